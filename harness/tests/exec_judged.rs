//! How `torture exec --fault …` judges what a crash state lost, from the recording: each lost
//! commit by its cause (acknowledged before it was written, before it was durable, or lost after
//! it was durable), each instance against its own acks, the user's invariant only from the first
//! ack on. Real Python sqlite3 programs under the real recorder. Positive controls: a liar, a
//! program that drops one instance's commits, settings declared durable that are not, an
//! invariant broken after the first ack. Negative controls: WAL+NORMAL and DELETE+FULL losing
//! what SQLite documents they may lose, the same instances without the drop, an invariant a
//! program establishes at start-up.

mod common;

use common::{csv_rows, say, Row};

use std::path::Path;
use std::process::{Command, Output};

const WRITER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../workloads/exec/python_writer.py"
);
const INSTANCES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../workloads/exec/instances_writer.py"
);

fn exec(out: &Path, flags: &[&str], program: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_torture"));
    c.args([
        "exec",
        "--no-progress",
        "-j",
        "1",
        "--fault",
        "power-loss",
        "--out",
    ])
    .arg(out)
    .args(flags)
    .arg("--")
    .args(program);
    c.output().expect("torture runs")
}

fn rows(out: &Path) -> (Vec<Row>, Vec<Row>) {
    (
        csv_rows(&out.join("crash-states.csv")),
        csv_rows(&out.join("trials.csv")),
    )
}

fn with<'a>(rows: &'a [Row], col: &str, value: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r[col] == value).collect()
}

fn replay_confirms(folder: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_torture"))
        .arg("replay")
        .arg(folder)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("confirmed"));
}

#[test]
fn an_early_ack_is_expected_unless_the_settings_promise_durability() {
    let t = tempfile::tempdir().unwrap();
    // WAL+NORMAL, the program printing nothing but its acks: the lab does not know its
    // synchronous; the recording shows each lost commit was acknowledged before a sync covered it.
    let quiet = [
        "python3",
        WRITER,
        "{db}",
        "--commits",
        "40",
        "--synchronous",
        "normal",
        "--quiet",
    ];
    let sql = [
        "--recovered-sql",
        "SELECT max(seq) FROM t",
        "-n",
        "3",
        "--seed",
        "4",
    ];
    let out = t.path().join("normal");
    let o = exec(&out, &sql, &quiet);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let (st, trials) = rows(&out);
    let lost = with(&st, "outcome", "lost-commit");
    assert!(!lost.is_empty(), "{}", say(&o));
    for r in &lost {
        assert_eq!(r["verdict"], "expected", "{r:?}");
        assert!(r["detail"].starts_with("[acked-before-durable]"), "{r:?}");
    }
    assert!(
        trials[0]["detail"].contains("acked-before-durable"),
        "{:?}",
        trials[0]
    );
    replay_confirms(&out.join("failures").join(&trials[0]["iteration"]));

    // The same program declared WAL+FULL with --synchronous: SQLite documents that as durable, so
    // the same early acks break the declared promise.
    let out = t.path().join("declared");
    let mut flags = sql.to_vec();
    flags.extend(["--synchronous", "full"]);
    let o = exec(&out, &flags, &quiet);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let (st, _) = rows(&out);
    let lost = with(&st, "outcome", "lost-commit");
    assert!(!lost.is_empty());
    for r in &lost {
        assert_eq!(r["verdict"], "violation", "{r:?}");
        assert!(r["detail"].contains("documented durable"), "{r:?}");
    }

    // DELETE+FULL: the journal's unlink is the commit and no directory sync covers it: the last
    // commit may roll back, as SQLite documents — expected, never a violation.
    let out = t.path().join("delete");
    let o = exec(
        &out,
        &sql,
        &[
            "python3",
            WRITER,
            "{db}",
            "--commits",
            "40",
            "--journal-mode",
            "delete",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let (st, _) = rows(&out);
    assert!(with(&st, "verdict", "violation").is_empty());
}

#[test]
fn a_program_that_acks_before_writing_is_the_programs_fault() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("lie");
    let o = exec(
        &out,
        &[
            "--recovered-sql",
            "SELECT max(seq) FROM t",
            "-n",
            "2",
            "--seed",
            "4",
        ],
        &["python3", WRITER, "{db}", "--commits", "30", "--lie"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let (st, trials) = rows(&out);
    let lost = with(&st, "outcome", "lost-commit");
    assert!(!lost.is_empty());
    for r in &lost {
        assert_eq!(r["verdict"], "violation", "{r:?}");
        assert!(r["detail"].starts_with("[acked-before-written]"), "{r:?}");
    }
    replay_confirms(&out.join("failures").join(&trials[0]["iteration"]));
}

#[test]
fn each_instance_is_checked_against_its_own_acks() {
    let t = tempfile::tempdir().unwrap();
    let flags = [
        "--instances",
        "3",
        "-n",
        "10",
        "--seed",
        "5",
        "--recovered-sql",
        "SELECT inst, seq FROM t",
    ];
    // Negative control: three instances numbering alike, nothing dropped.
    let out = t.path().join("ok");
    let o = exec(&out, &flags, &["python3", INSTANCES, "{db}"]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let (st, _) = rows(&out);
    assert_eq!(with(&st, "outcome", "intact").len(), st.len());

    // Positive control: instance 1 drops every 7th commit and acknowledges it all the same.
    let out = t.path().join("drop");
    let o = exec(
        &out,
        &flags,
        &["python3", INSTANCES, "{db}", "--drop", "7:1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let (st, trials) = rows(&out);
    let caught = with(&trials, "verdict", "violation").len();
    assert!(caught >= 9, "caught in {caught} of 10 trials: {}", say(&o));
    for r in with(&st, "outcome", "lost-commit") {
        assert!(r["detail"].contains("instance 1"), "{r:?}");
    }
}

#[test]
fn an_invariant_holds_from_the_first_ack_on() {
    let t = tempfile::tempdir().unwrap();
    // A program whose invariant (one `totals` row) is set up at start-up, before its first ack;
    // `--break` deletes it after commit 5.
    let program = t.path().join("totals.py");
    std::fs::write(
        &program,
        r#"import sqlite3, sys
db, brk = sys.argv[1], "--break" in sys.argv
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA journal_mode=wal"); con.execute("PRAGMA synchronous=full")
print("journal_mode wal\nsynchronous full", flush=True)
con.execute("CREATE TABLE totals(n INTEGER)")
con.execute("CREATE TABLE item(seq INTEGER PRIMARY KEY)")
con.execute("INSERT INTO totals VALUES (0)")
for n in range(1, 21):
    con.execute("BEGIN")
    con.execute("INSERT INTO item VALUES (?)", (n,))
    con.execute("DELETE FROM totals" if brk and n == 5 else "UPDATE totals SET n = n + 1")
    con.execute("COMMIT")
    print(f"ack {n}", flush=True)
"#,
    )
    .unwrap();
    let verify =
        "SELECT CASE WHEN (SELECT count(*) FROM totals) = 1 THEN 'ok' ELSE 'no totals row' END";
    let flags = [
        "--recovered-sql",
        "SELECT max(seq) FROM item",
        "--verify-sql",
        verify,
        "-n",
        "3",
        "--seed",
        "6",
        "--max-states",
        "all",
    ];
    let p = program.to_str().unwrap();
    let out = t.path().join("setup");
    let o = exec(&out, &flags, &["python3", p, "{db}"]);
    assert_eq!(o.status.code(), Some(0), "{}", say(&o));
    let (st, _) = rows(&out);
    assert_eq!(with(&st, "outcome", "intact").len(), st.len());
    assert!(
        st.iter()
            .any(|r| r["detail"].starts_with("before the program's first ack")),
        "some state falls in the start-up, before the invariant was made"
    );

    let out = t.path().join("break");
    let o = exec(&out, &flags, &["python3", p, "{db}", "--break"]);
    assert_eq!(o.status.code(), Some(1), "{}", say(&o));
    let (st, _) = rows(&out);
    assert!(!with(&st, "outcome", "atomicity").is_empty());
}
