//! Local Docker images and containers for the tests. Nothing is pulled: the image is a static
//! busybox (Debian's busybox-static) that `cargo xtask setup` imports into the engine.

use std::process::Command;

use crate::sh;

/// The test image: busybox with `sh`, `httpd`, `nc` and `sleep`.
pub const IMAGE: &str = "strata-test/busybox:latest";

/// Checks that the engine has the test image, which `cargo xtask setup` imports.
pub fn ensure_image() {
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        present,
        "the Docker engine has no {IMAGE}: run `cargo xtask setup`, which imports it"
    );
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
