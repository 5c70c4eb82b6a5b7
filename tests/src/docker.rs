//! Local Docker images and containers for the tests. Nothing is pulled: the image is a static
//! busybox (Debian's busybox-static) imported into the engine.

use std::process::Command;

use crate::sh;

/// The test image: busybox with `sh`, `httpd`, `nc` and `sleep`.
pub const IMAGE: &str = "strata-test/busybox:latest";

/// Imports the test image unless the engine already has it.
pub fn ensure_image() {
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return;
    }
    let root = std::env::temp_dir().join(format!("strata-busybox-{}", std::process::id()));
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("creating the image tree");
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("copying /bin/busybox (Debian package busybox-static)");
    for applet in ["sh", "httpd", "nc", "sleep", "cat", "echo", "wget"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("linking an applet");
    }
    let tarball = root.with_extension("tar");
    sh(
        "tar",
        &[
            "-C",
            &root.to_string_lossy(),
            "-cf",
            &tarball.to_string_lossy(),
            ".",
        ],
    );
    sh(
        "docker",
        &[
            "import",
            "-c",
            "CMD [\"/bin/sh\"]",
            &tarball.to_string_lossy(),
            IMAGE,
        ],
    );
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&tarball);
}

/// A running container, removed when dropped.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub name: String,
}

impl Container {
    /// `docker run -d --name <name> <run_args> IMAGE <command>`.
    pub fn run(name: &str, run_args: &[&str], command: &[&str]) -> Self {
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(run_args);
        args.push(IMAGE);
        args.extend_from_slice(command);
        let id = sh("docker", &args).trim().to_owned();
        Self {
            id,
            name: name.to_owned(),
        }
    }

    /// `docker inspect -f <format>`.
    pub fn inspect(&self, format: &str) -> String {
        sh("docker", &["inspect", "-f", format, &self.id])
            .trim()
            .to_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}
