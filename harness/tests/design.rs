//! What DESIGN.md says about the code's shape, checked on the code (`scripts/layers`): no import
//! circles, and no more imports running back up the layers than DESIGN.md names; planted ones are
//! the positive controls.

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

/// The imports running back up the layers that DESIGN.md names ("Layers"): a new one fails here
/// until it is moved away or DESIGN.md says why it stays.
const UPWARD_IMPORTS: usize = 1;

/// The count on the line `N import(s) running back up the layers`.
fn upward(out: &str) -> usize {
    let line = out
        .lines()
        .find(|l| l.contains("import(s) running back up"))
        .unwrap_or_else(|| panic!("no upward count in: {out}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn no_more_imports_run_back_up_than_design_md_names() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (_, out) = layers(&src);
    // Exactly: fewer is progress DESIGN.md must record (lower the number here and there).
    assert_eq!(upward(&out), UPWARD_IMPORTS, "{out}");
    let design =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../DESIGN.md"))
            .unwrap();
    assert!(
        design.contains(&format!("**{UPWARD_IMPORTS} import")),
        "DESIGN.md names another count than {UPWARD_IMPORTS}"
    );
}

/// Test code may import anything: an upward import in a file its parent declares
/// `#[cfg(test)] mod x;` is not counted, and the same file declared without it is.
#[test]
fn an_upward_import_counts_unless_the_file_is_test_code() {
    for (decl, expected) in [("#[cfg(test)]\nmod m;\n", 0), ("mod m;\n", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        let w = |rel: &str, text: &str| {
            let p = src.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("lib.rs", "pub mod output;\npub mod verify;\n");
        w("output/mod.rs", "pub struct Summary;\n");
        w("verify/mod.rs", decl);
        w("verify/m.rs", "use crate::output::Summary;\n");
        let (code, out) = layers(src);
        assert_eq!(code, 0, "{out}");
        assert_eq!(upward(&out), expected, "{decl:?}: {out}");
        assert_eq!(out.contains("verify::m -> output"), expected == 1, "{out}");
    }
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
    assert_eq!(upward(&out), 1, "{out}");
}

/// The forms a circle hides behind: `super::` between sibling files, a nested `use` group, and an
/// import after a test module. Each planted pair must be found; a `pub use` re-export of a child
/// (a module's public face) is not a circle.
#[test]
fn circles_through_super_nested_groups_and_after_tests_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let w = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("lib.rs", "pub mod a;\npub mod b;\n");
    // Siblings through `super::`.
    w(
        "a/mod.rs",
        "pub mod x;\npub mod y;\npub use x::X;\npub struct Face;\n",
    );
    w("a/x.rs", "use super::y::Y;\npub struct X;\n");
    w(
        "a/y.rs",
        "pub struct Y;\nfn f() -> Option<super::x::X> { None }\n",
    );
    // A nested group, and an import after a test module.
    w("b/mod.rs", "pub mod p;\npub mod q;\n");
    w(
        "b/p.rs",
        "use crate::{a::Face, b::{q::Q}};\npub struct P;\n",
    );
    w(
        "b/q.rs",
        "#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\nuse crate::b::p::P;\npub struct Q;\n",
    );
    let (code, out) = layers(src);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("2 import circle(s)"), "{out}");
    assert!(
        out.contains("a::x -> a::y") && out.contains("a::y -> a::x"),
        "{out}"
    );
    assert!(
        out.contains("b::p -> b::q") && out.contains("b::q -> b::p"),
        "{out}"
    );
    // `pub use x::X` in a/mod.rs is the module's face: no a -> a::x edge, so no circle through it.
    assert!(!out.contains("a -> a::x"), "{out}");
}

/// The count on the line `N function(s) over 150 lines`.
fn long(out: &str) -> usize {
    let line = out
        .lines()
        .find(|l| l.contains("function(s) over 150 lines"))
        .unwrap_or_else(|| panic!("no long-function count in: {out}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

/// The functions over 150 lines DESIGN.md names ("Layers"; the goal is none): a new one fails
/// here; fewer is progress to record there and here.
const LONG_FUNCTIONS: usize = 2;

#[test]
fn no_more_functions_over_150_lines_than_design_md_names() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (_, out) = layers(&src);
    assert_eq!(long(&out), LONG_FUNCTIONS, "{out}");
    let design =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../DESIGN.md"))
            .unwrap();
    assert!(
        design.contains(&format!("**{LONG_FUNCTIONS} functions over 150 lines**")),
        "DESIGN.md names another count than {LONG_FUNCTIONS}"
    );
}

/// Positive control: a planted 151-line function is found, in a file and after a test module;
/// negative controls: 150 lines, a trait's declaration without a body, and a long test.
#[test]
fn a_planted_long_function_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("trial")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod trial;\n").unwrap();
    std::fs::write(src.join("trial/mod.rs"), "pub mod run;\n").unwrap();
    // A function of `lines` lines, from `fn` to its closing brace.
    let function = |name: &str, indent: &str, lines: usize| {
        let mut f = format!("{indent}pub fn {name}() {{\n");
        for i in 0..lines - 2 {
            f.push_str(&format!("{indent}    let _x{i} = {i};\n"));
        }
        f.push_str(&format!("{indent}}}\n"));
        f
    };
    let body = [
        "pub trait Check {\n    fn check(&self) -> u8;\n}\n".to_string(),
        function("exactly_150", "", 150),
        "#[cfg(test)]\nmod tests {\n".to_string(),
        function("a_long_test", "    ", 400),
        "}\n".to_string(),
        "impl S {\n".to_string(),
        function("too_long", "    ", 151),
        "}\npub struct S;\n".to_string(),
    ]
    .concat();
    std::fs::write(src.join("trial/run.rs"), body).unwrap();
    let (_, out) = layers(src);
    assert_eq!(long(&out), 1, "{out}");
    assert!(out.contains("trial::run::too_long: 151 lines"), "{out}");
}
