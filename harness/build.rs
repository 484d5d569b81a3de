//! Builds the file-operation recorder (`libtorture_preload.so`, the `preload` crate) and embeds it
//! in the `torture` binary, so an installed `torture` (`cargo install --path harness --locked`) can
//! run `exec --fault …` with nothing beside it: the binary writes the library, named by its
//! checksum, into its cache on first use (`faults::preload::library`).
//!
//! A nested `cargo build` of the one crate, offline and locked, into a target folder of its own
//! under `OUT_DIR` (the outer build holds the workspace's target folder). The recorder depends only
//! on `libc`, which the harness depends on too, so nothing is fetched; it takes a few seconds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let preload = manifest_dir.join("../preload");
    println!("cargo:rerun-if-changed={}", preload.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        preload.join("Cargo.toml").display()
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let target = out.join("preload-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--offline",
        "--lib",
        "--manifest-path",
    ])
    .arg(preload.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target);
    if manifest_dir.join("../Cargo.lock").is_file() {
        cmd.arg("--locked");
    }
    // What the outer build set for its own crates must not leak into this one.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_FEATURE_")
            || k.starts_with("CARGO_CFG_")
            || k == "CARGO_TARGET_DIR"
            || k == "CARGO_BUILD_TARGET_DIR"
            // The recorder is preloaded into programs of this machine: built for the host, where
            // the path below expects it.
            || k == "CARGO_BUILD_TARGET"
            || k == "CARGO_ENCODED_RUSTFLAGS"
            || k == "RUSTC_WRAPPER"
            || k == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(&k);
        }
    }
    let status = cmd
        .status()
        .expect("run cargo to build the recorder (preload/)");
    assert!(
        status.success(),
        "building the recorder (preload/) failed: {status}"
    );
    let lib = target.join("release/libtorture_preload.so");
    assert!(lib.is_file(), "{} was not built", lib.display());
    println!("cargo:rustc-env=TORTURE_PRELOAD_SO={}", lib.display());
}
