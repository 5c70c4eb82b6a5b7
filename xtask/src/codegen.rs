//! `cargo xtask codegen`: regenerates the FlatBuffers code of `proto` from its schema with the
//! project's flatc (installed by setup). A test fails when the committed code is stale.

use std::process::Command;

use crate::{cmd, setup, workspace_root};

/// The schema and where its generated Rust code lives, relative to the workspace root.
pub const SCHEMA: &str = "proto/schema/strata.fbs";
pub const OUTPUT_DIR: &str = "proto/src/generated";

pub fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    cmd::run(
        Command::new(setup::flatc())
            .current_dir(&root)
            .args(["--rust", "-o", OUTPUT_DIR, SCHEMA]),
    )?;
    eprintln!("xtask: regenerated {OUTPUT_DIR} from {SCHEMA}");
    Ok(())
}
