//! What DESIGN.md says about the code's shape, checked on the code: no import circles
//! (`scripts/layers`), with a planted circle as the positive control.

use std::path::Path;
use std::process::Command;

fn layers(src: &Path) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/layers");
    let out = Command::new("python3")
        .arg(&script)
        .arg(src)
        .output()
        .expect("python3 runs scripts/layers");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_harness_has_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (code, out) = layers(&src);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("0 import circle(s)"), "{out}");
}

#[test]
fn a_planted_circle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("trial")).unwrap();
    std::fs::create_dir_all(src.join("verify")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod trial;\npub mod verify;\n").unwrap();
    std::fs::write(src.join("trial/mod.rs"), "pub mod outcome;\n").unwrap();
    std::fs::write(
        src.join("trial/outcome.rs"),
        "use crate::verify::oracle::check;\npub struct Outcome;\n",
    )
    .unwrap();
    std::fs::write(src.join("verify/mod.rs"), "pub mod oracle;\n").unwrap();
    std::fs::write(
        src.join("verify/oracle.rs"),
        "use crate::trial::outcome::Outcome;\npub fn check() -> Option<Outcome> { None }\n",
    )
    .unwrap();
    let (code, out) = layers(src);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("1 import circle(s)"), "{out}");
    assert!(out.contains("trial::outcome -> verify::oracle"), "{out}");
    // The upward import is named too: trial sits above verify.
    assert!(out.contains("verify::oracle -> trial::outcome"), "{out}");
}
