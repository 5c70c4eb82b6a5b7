//! Builds the eBPF programs of `agent-ebpf` for the BPF target and places the object in
//! `OUT_DIR`, where `src/collect/ebpf` embeds it.
//!
//! With `AYA_BUILD_SKIP=1` the eBPF build is skipped (no nightly or bpf-linker needed) and an
//! empty object is written instead; the agent then reports that it was built without eBPF and
//! runs in procfs mode.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};

const EBPF_PACKAGE: &str = "agent-ebpf";
const EBPF_BINARY: &str = "strata-probes";

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("agent crate has no parent directory"))?
        .join(EBPF_PACKAGE);
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )?;
    let object = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR")?).join(EBPF_BINARY);
    if !object.exists() {
        // Only reached with AYA_BUILD_SKIP: keep `include_bytes_aligned!` compiling.
        fs::write(&object, []).with_context(|| format!("writing {}", object.display()))?;
    }
    Ok(())
}
