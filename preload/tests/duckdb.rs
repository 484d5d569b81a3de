//! The recorder under DuckDB (its Python package, a prebuilt wheel: its I/O goes through libc too):
//! WAL commits, the WAL's removal at close through `remove()`, crash states checked by DuckDB.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use torture_preload::{enumerate, Coverage, CrashPlan, CrashState, Model, OpKind};

fn duck_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/duck_writer.py")
}

fn require_duckdb() {
    let out = Command::new(python())
        .args(["-c", "import duckdb"])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "these tests need DuckDB's Python package: pip install duckdb ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Checks every state with one DuckDB process; returns (states, damaged, lost).
fn check_with_duckdb(states: Vec<CrashState>) -> (usize, usize, usize) {
    let root = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let mut dirs = Vec::new();
    for (i, s) in states.iter().enumerate() {
        let d = root.path().join(i.to_string());
        s.write_to(&d).unwrap();
        dirs.push(d);
    }
    let out = Command::new(python())
        .arg(duck_script())
        .arg("--check")
        .args(&dirs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), states.len());
    let (mut damaged, mut lost) = (0, 0);
    for (line, s) in lines.iter().zip(&states) {
        if let Some(seqs) = line.strip_prefix("ok ") {
            let present: std::collections::BTreeSet<u64> =
                seqs.split(',').filter_map(|x| x.parse().ok()).collect();
            if s.acks.all().any(|(_, n)| !present.contains(&n)) {
                lost += 1;
                eprintln!(
                    "lost at cut {} {:?}: acks {} present {:?}",
                    s.cut.after,
                    s.variant,
                    s.acks.total(),
                    present
                );
            }
        } else {
            damaged += 1;
            eprintln!("damaged at cut {} {:?}: {line}", s.cut.after, s.variant);
        }
    }
    (states.len(), damaged, lost)
}

/// Records `commits` commits on a database prepared without the recorder (as the lab starts every
/// trial from a prepared database).
fn record_duck(commits: &str) -> Recording {
    require_duckdb();
    let tmp = new_folder();
    let out = Command::new(python())
        .arg(duck_script())
        .arg(tmp.path().join("db/x.duckdb"))
        .arg("0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(python());
    cmd.arg(duck_script())
        .arg(tmp.path().join("db/x.duckdb"))
        .arg(commits);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    r
}

#[test]
fn duckdb_is_recorded_and_every_crash_state_keeps_its_acked_commits() {
    let r = record_duck("25");
    assert_eq!(r.log.coverage(), Coverage::FileOps);
    assert!(
        r.log.ops.iter().any(
            |o| matches!(&o.kind, OpKind::Unlink { path, .. } if path.ends_with("x.duckdb.wal"))
        ),
        "the WAL's removal (remove()) was not seen"
    );
    // The folder rebuilt from the log is the folder on disk.
    let end = r.log.ops.last().unwrap().seq;
    let rebuilt = torture_preload::build_state(
        &r.start,
        &r.log,
        torture_preload::Cut { after: end },
        torture_preload::Variant::KeepAll,
        &Model::default(),
    )
    .unwrap();
    let disk: std::collections::BTreeMap<_, _> = torture_preload::snapshot(&r.dir())
        .unwrap()
        .files
        .into_iter()
        .map(|(p, f)| (p, f.data))
        .collect();
    assert_eq!(disk, rebuilt);
    // DuckDB creates its WAL without fsyncing the directory: under the strict model its name (and
    // the commits in it) may vanish. On a file system whose fsync commits names (ext4, XFS, btrfs
    // in practice) nothing acknowledged is lost.
    let strict = enumerate(&r.start, &r.log, &CrashPlan::every_sync(Model::default())).unwrap();
    let (s_states, s_damaged, s_lost) = check_with_duckdb(strict.states().collect());
    eprintln!("DuckDB, strict names: {s_states} states, {s_damaged} damaged, {s_lost} lost an acked commit");
    let model = Model {
        fsync_commits_names: true,
        ..Model::default()
    };
    let e = enumerate(&r.start, &r.log, &CrashPlan::every_sync(model)).unwrap();
    let (states, damaged, lost) = check_with_duckdb(e.states().collect());
    eprintln!("DuckDB, fsync commits names: {states} distinct states, {damaged} damaged, {lost} lost an acked commit");
    assert!(states >= 25);
    assert_eq!((damaged, lost), (0, 0));
}

#[test]
fn duckdb_on_a_lying_disk_loses_acked_commits() {
    let r = record_duck("10");
    let model = Model {
        lying_disk: true,
        ..Model::default()
    };
    let e = enumerate(&r.start, &r.log, &CrashPlan::every_sync(model)).unwrap();
    let (states, damaged, lost) = check_with_duckdb(e.states().collect());
    eprintln!("DuckDB, lying disk: {states} states, {damaged} damaged, {lost} lost");
    assert!(lost + damaged > 0, "positive control not caught");
}
