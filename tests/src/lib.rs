//! Harness for strata's end-to-end tests: running the real agent binary, creating network
//! namespaces with NAT rules, building local Docker images, and starting test peers.
//!
//! The tests need root (eBPF, namespaces, Docker). Without root they fail with a message
//! saying so, unless `STRATA_SKIP_PRIVILEGED=1` is set, in which case each test prints that it
//! was skipped: never a silent pass.

pub mod agent;
pub mod cluster;
pub mod docker;
pub mod framework;
pub mod load;
pub mod marathon;
pub mod netns;
pub mod peer;
pub mod rogue;
pub mod sim_executor;
pub mod synthetic;
pub mod v1_framework;
pub mod zk;

use std::process::Command;

/// Whether privileged tests can run; panics with instructions when they cannot and skipping
/// was not asked for.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("STRATA_SKIP_PRIVILEGED").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: needs root (STRATA_SKIP_PRIVILEGED=1)");
        return false;
    }
    panic!(
        "{test} needs root: run `cargo xtask test` as root, or set STRATA_SKIP_PRIVILEGED=1 to skip it"
    );
}

/// Runs a command, panicking with its output when it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A binary of the workspace: the path in `env` (set by `cargo xtask test`), else the debug
/// build.
pub fn binary(env: &str, name: &str) -> std::path::PathBuf {
    std::env::var_os(env)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/debug")
                .join(name)
        })
}

/// A name unique to this test process, for namespaces, containers and rules.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}
