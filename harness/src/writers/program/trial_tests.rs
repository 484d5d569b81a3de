//! Tests of `trial.rs`: real programs (Python's sqlite3, the sqlite3 shell, DuckDB, libSQL) tortured trial by trial.

use crate::verify::outcome::Verdict;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use clap::Parser;

use super::*;
use crate::writers::program::calibrate_report;
use crate::writers::program::AfterKill;

const EXEC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../workloads/exec");

struct Lab {
    _tmp: tempfile::TempDir,
    run: RunOptions,
    files: SlotFiles,
    work: PathBuf,
}

/// Run options for tests: seed `seed`, results in `out`.
pub(crate) fn test_run(seed: u64, out: &Path) -> RunOptions {
    let cli = crate::cli::Cli::try_parse_from([
        "torture",
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
        "--trial-timeout",
        "60s",
    ])
    .unwrap();
    RunOptions::validate(cli.run, "torture exec (test)".into()).unwrap()
}

fn lab(seed: u64) -> Lab {
    let tmp = tempfile::tempdir_in(crate::options::default_work_base()).unwrap();
    let run = test_run(seed, &tmp.path().join("out"));
    let dir = tmp.path().join("slot-0");
    std::fs::create_dir_all(&dir).unwrap();
    let files = SlotFiles::new(dir, 1, Vec::new()).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    Lab {
        _tmp: tmp,
        run,
        files,
        work,
    }
}

impl Lab {
    fn trials(&self, exec: &ExecOptions, window: (Duration, Duration), n: u64) -> Vec<TrialRecord> {
        (0..n)
            .map(|i| run_trial(&self.run, exec, window, i, &self.files, "3.x"))
            .collect()
    }

    /// The options with a calibrated (and anchored) kill window, as the run saves them.
    fn calibrated(&self, exec: ExecOptions) -> (ExecOptions, (Duration, Duration)) {
        let c = calibrate_report(&exec, &self.work, Duration::from_secs(60), &self.run).unwrap();
        eprintln!("{}: {c}", exec.profile_name());
        (exec.with_calibration(&c), c.window)
    }
}

fn counts(records: &[TrialRecord]) -> BTreeMap<Outcome, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.outcome).or_insert(0) += 1;
    }
    m
}

fn report(name: &str, records: &[TrialRecord], secs: f64) {
    let writing = records.iter().filter(|r| r.acked_commits > 0).count();
    eprintln!(
        "{name}: {} trials in {secs:.1}s ({:.1}/s), {writing} killed after an ack, {:?}",
        records.len(),
        records.len() as f64 / secs,
        counts(records)
    );
    for r in records
        .iter()
        .filter(|r| r.outcome != Outcome::Intact)
        .take(3)
    {
        eprintln!(
            "  {} {} {}: {}",
            r.iteration, r.kill_point, r.outcome, r.detail
        );
    }
}

fn python_has(module: &str) -> bool {
    std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn python_writer(args: &[&str]) -> ExecOptions {
    let mut cmd = vec![
        "python3".to_string(),
        format!("{EXEC_DIR}/python_writer.py"),
        "{db}".to_string(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let mut o = ExecOptions::new(cmd);
    o.recovered_sql = Some("SELECT max(seq) FROM t".into());
    o.verify_sql = Some(check::tests::verify_sql());
    o
}

#[test]
fn the_python_sqlite3_writer_in_wal_mode_survives_every_kill() {
    assert!(
        python_has("sqlite3"),
        "python3 with its sqlite3 module is needed: install python3 (.ci/run uses the machine's)"
    );
    let lab = lab(11);
    let exec = python_writer(&["--commits", "2000"]);
    let (exec, window) = lab.calibrated(exec);
    let t = Instant::now();
    let records = lab.trials(&exec, window, 12);
    report("python_writer.py wal", &records, t.elapsed().as_secs_f64());
    for r in &records {
        assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
        assert_eq!(r.verdict, Verdict::Ok);
        assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
        assert_eq!(r.profile, "exec:python_writer.py");
        assert_eq!(r.workload, "exec");
        assert_eq!(r.fault, "sigkill");
        assert!(r.kill_point.starts_with("t="), "{}", r.kill_point);
    }
    let writing: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
    assert!(
        writing.len() >= 7,
        "most kills should land while the program writes: {records:?}"
    );
    assert!(writing.iter().all(|r| r.journal_mode == "wal"));
    assert!(writing.iter().all(|r| r.synchronous == "full"));
    assert!(
        !lab.files.dir.join("exec-0").exists(),
        "trial folders are removed"
    );
}

#[test]
fn a_program_that_acks_before_committing_is_caught_losing_commits() {
    assert!(
        python_has("sqlite3"),
        "python3 with its sqlite3 module is needed: install python3 (.ci/run uses the machine's)"
    );
    let lab = lab(12);
    // Big transactions: the lie (the ack of commit N printed before N is made) is exposed
    // whenever the kill lands inside one. DELETE mode: in WAL mode a kill during the
    // checkpoint that follows some COMMITs lands after the commit point and hides the lie.
    let exec = python_writer(&[
        "--lie",
        "--journal-mode",
        "delete",
        "--commits",
        "600",
        "--rows",
        "20..40",
    ]);
    let (mut exec, window) = lab.calibrated(exec);
    // Killed right after the K-th ack, not at a time: the lie is that ack K comes before commit K
    // is made, so a kill that follows an ack at once lands before its commit on any machine,
    // however loaded (a time drawn from the calibrated window did too seldom under load).
    exec.kill_acks = Some((5, 300));
    exec.kill_delay = (Duration::ZERO, Duration::ZERO);
    let t = Instant::now();
    let records = lab.trials(&exec, window, 14);
    report(
        "python_writer.py --lie",
        &records,
        t.elapsed().as_secs_f64(),
    );
    let lost: Vec<_> = records
        .iter()
        .filter(|r| r.outcome == Outcome::LostCommit)
        .collect();
    assert!(lost.len() >= 4, "{:?}", counts(&records));
    for r in &lost {
        assert_eq!(r.verdict, Verdict::Violation);
        assert!(r.recovered_commits < r.acked_commits, "{r:?}");
        assert!(r.detail.contains("acknowledged up to"), "{}", r.detail);
    }
    let failure = lab
        .run
        .out_dir
        .join("failures")
        .join(lost[0].iteration.to_string());
    for f in ["trial.json", "trial.db", "stderr.txt", "stdout-tail.txt"] {
        assert!(failure.join(f).is_file(), "{f} missing in {failure:?}");
    }
    let note: ExecTrialNote =
        serde_json::from_str(&std::fs::read_to_string(failure.join("trial.json")).unwrap())
            .unwrap();
    assert_eq!(note.kind, "exec");
    assert_eq!(note.record.outcome, Outcome::LostCommit);
    assert!(note.argv.iter().any(|a| a.ends_with("trial.db")));
}

#[test]
fn journal_mode_off_with_big_transactions_breaks_as_documented() {
    assert!(
        python_has("sqlite3"),
        "python3 with its sqlite3 module is needed: install python3 (.ci/run uses the machine's)"
    );
    let lab = lab(13);
    // A tiny page cache writes half-done transfers over pages in use before COMMIT; without a
    // journal nothing can take them back.
    let exec = python_writer(&[
        "--journal-mode",
        "off",
        "--synchronous",
        "off",
        "--commits",
        "300",
        "--transfers",
        "60",
        "--cache-size",
        "8",
    ]);
    let (exec, window) = lab.calibrated(exec);
    let t = Instant::now();
    let records = lab.trials(&exec, window, 20);
    report("python_writer.py off", &records, t.elapsed().as_secs_f64());
    let damaged: Vec<_> = records.iter().filter(|r| r.outcome.is_damage()).collect();
    assert!(damaged.len() >= 3, "{:?}", counts(&records));
    for r in &damaged {
        assert_eq!(r.journal_mode, "off");
        assert_eq!(
            r.verdict,
            Verdict::Expected,
            "the program read back journal_mode=off: SQLite promises nothing"
        );
    }
}

#[test]
fn the_sqlite3_shell_fed_a_script_survives_every_kill() {
    let cli = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    assert!(
        cli.is_some(),
        "the sqlite3 shell is needed: apt-get install sqlite3"
    );
    let lab = lab(14);
    let mut exec = ExecOptions::new(vec![
        "sh".into(),
        format!("{EXEC_DIR}/sqlite3_cli_writer.sh"),
        "{db}".into(),
        "1500".into(),
    ]);
    exec.recovered_sql = Some("SELECT max(seq) FROM t".into());
    exec.verify_sql = Some(check::tests::verify_sql());
    let (exec, window) = lab.calibrated(exec);
    let t = Instant::now();
    let records = lab.trials(&exec, window, 10);
    report("sqlite3_cli_writer.sh", &records, t.elapsed().as_secs_f64());
    for r in &records {
        assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
        assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
        assert_eq!(r.profile, "exec:sqlite3_cli_writer.sh");
    }
    let writing: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
    assert!(writing.len() >= 6, "{records:?}");
    assert!(writing
        .iter()
        .all(|r| r.journal_mode == "wal" && r.sqlite_version.starts_with("3.")));
}

#[test]
fn trials_start_from_the_seed_database() {
    assert!(
        python_has("sqlite3"),
        "python3 with its sqlite3 module is needed: install python3 (.ci/run uses the machine's)"
    );
    let lab = lab(15);
    let seed_db = lab.work.join("seed.db");
    check::tests::writer_db(&seed_db, 50);
    let mut exec = python_writer(&["--commits", "1000"]);
    exec.seed_db = Some(seed_db.clone());
    // Killed before the interpreter could even start: the database is the seed, untouched.
    let early = lab.trials(
        &exec,
        (Duration::from_micros(1), Duration::from_micros(1)),
        1,
    );
    assert_eq!(early[0].outcome, Outcome::Intact, "{:?}", early[0]);
    assert_eq!(
        (early[0].acked_commits, early[0].recovered_commits),
        (0, 50)
    );
    // Killed while writing: the program carried on after the seed's 50 commits.
    let (exec, window) = lab.calibrated(exec);
    let late = run_trial(&lab.run, &exec, (window.1, window.1), 1, &lab.files, "3.x");
    assert_eq!(late.outcome, Outcome::Intact, "{late:?}");
    assert!(late.acked_commits > 50, "{late:?}");
    assert!(late.recovered_commits >= late.acked_commits);
    let seed_max: i64 = rusqlite::Connection::open(&seed_db)
        .unwrap()
        .query_row("SELECT max(seq) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seed_max, 50, "the seed itself is only copied");
}

#[test]
fn kills_follow_a_start_up_slower_than_calibrated() {
    assert!(
        python_has("sqlite3"),
        "python3 with its sqlite3 module is needed: install python3 (.ci/run uses the machine's)"
    );
    let lab = lab(19);
    let (fast, window) = lab.calibrated(python_writer(&[
        "--start-delay",
        "0.1",
        "--commits",
        "3000",
    ]));
    // The same program on a busy day: it sleeps past the end of the calibrated window before
    // it even opens the database, so kills counted from its start alone all land in start-up.
    let delay = format!("{:.3}", window.1.as_secs_f64() + 0.2);
    let mut slow = python_writer(&["--start-delay", &delay, "--commits", "3000"]);
    slow.kill_window = fast.kill_window;
    slow.anchor = fast.anchor;
    let records = lab.trials(&slow, window, 5);
    let writing = records.iter().filter(|r| r.acked_commits > 0).count();
    assert!(writing >= 3, "{records:?}");
    for r in &records {
        assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
    }
    slow.anchor = None;
    for r in lab.trials(&slow, window, 2) {
        assert_eq!(r.acked_commits, 0, "{r:?}");
    }
}

#[test]
fn a_program_that_fails_by_itself_is_a_worker_error_with_its_stderr() {
    let lab = lab(16);
    let exec = ExecOptions::new(vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo 'ModuleNotFoundError: no module named app' >&2; exit 1".into(),
    ]);
    let r = &lab.trials(&exec, (Duration::from_secs(5), Duration::from_secs(5)), 1)[0];
    assert_eq!(r.outcome, Outcome::WorkerError, "{r:?}");
    assert_eq!(
        r.verdict,
        Verdict::ProgramError,
        "the program's own failure is named as such"
    );
    assert!(r.detail.contains("status 1") && r.detail.contains("ModuleNotFoundError"));
    assert!(r.kill_point.contains("not reached"), "{}", r.kill_point);
    assert!(
        r.duration_us < 4_000_000,
        "the lab did not wait for the kill time"
    );
    let missing = ExecOptions::new(vec!["/nonexistent/app".into()]);
    let r = &lab.trials(&missing, (Duration::ZERO, Duration::ZERO), 1)[0];
    assert_eq!(r.outcome, Outcome::WorkerError);
    assert!(r.detail.contains("cannot start"), "{}", r.detail);
}

/// `module` from PyPI, installed with pip if it is missing.
fn pip_ready(module: &str) -> Result<(), String> {
    if python_has(module) {
        return Ok(());
    }
    let pip = std::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", module])
        .output()
        .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
    if python_has(module) {
        Ok(())
    } else {
        Err(format!(
            "`python3 -m pip install {module}` failed ({}): {}",
            pip.status,
            check::tail(&pip.stderr, 400)
        ))
    }
}

/// DuckDB through its PyPI wheel: installed once per test run if it is missing.
fn duckdb_ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY.get_or_init(|| pip_ready("duckdb")).clone()
}

fn require_duckdb() {
    if let Err(e) = duckdb_ready() {
        panic!("DUCKDB TEST NOT RUN (and failed so you see it): {e}");
    }
}

/// `duckdb_writer.py`, 80 commits of 1..50 rows, checked by DuckDB with `--recovered-sql`.
fn duckdb_writer() -> ExecOptions {
    let mut exec = ExecOptions::new(vec![
        "python3".into(),
        format!("{EXEC_DIR}/duckdb_writer.py"),
        "{db}".into(),
        "--commits".into(),
        "80".into(),
        "--rows".into(),
        "1..50".into(),
    ]);
    exec.engine = Engine::Duckdb;
    exec.recovered_sql = Some("SELECT max(seq) FROM t".into());
    exec
}

#[test]
fn the_python_duckdb_writer_is_checked_by_reopening_with_duckdb() {
    require_duckdb();
    let lab = lab(17);
    let mut exec = duckdb_writer();
    exec.verify_sql =
        Some(std::fs::read_to_string(format!("{EXEC_DIR}/verify_duckdb.sql")).unwrap());
    let (exec, window) = lab.calibrated(exec);
    let t = Instant::now();
    let records = lab.trials(&exec, window, 6);
    report("duckdb_writer.py", &records, t.elapsed().as_secs_f64());
    for r in &records {
        assert_ne!(r.outcome, Outcome::WorkerError, "{r:?}");
        assert!(r.sqlite_version.starts_with("duckdb "), "{r:?}");
        assert_eq!(r.profile, "exec:duckdb_writer.py");
        if r.outcome == Outcome::Intact {
            assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
        }
    }
    assert!(records.iter().filter(|r| r.acked_commits > 0).count() >= 3);
}

#[test]
fn deleting_duckdbs_wal_after_the_kill_loses_what_was_acknowledged() {
    // Seed 004's operator fix ("delete the WAL, DuckDB will rebuild"), measured.
    require_duckdb();
    let lab = lab(19);
    let mut exec = duckdb_writer();
    exec.after_kill = Some(AfterKill::DeleteWal);
    let (exec, window) = lab.calibrated(exec);
    let records = lab.trials(&exec, window, 6);
    for r in &records {
        assert_eq!(r.profile, "exec:duckdb_writer.py+delete-wal");
        assert_ne!(r.verdict, Verdict::Violation, "the operator's doing: {r:?}");
    }
    let acked: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
    assert!(acked.len() >= 3, "{records:?}");
    // DuckDB checkpoints its WAL into the database now and then and removes it; a kill right
    // after that leaves no WAL to delete, and then nothing is lost.
    let mut deleted = 0;
    for r in acked {
        if r.detail.contains("deleted trial.db.wal") {
            deleted += 1;
            assert_eq!(r.outcome, Outcome::LostCommit, "{r:?}");
        } else {
            assert!(r.detail.contains("nothing to delete"), "{}", r.detail);
            assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
        }
    }
    assert!(deleted >= 2, "{records:?}");
}

#[test]
fn operator_actions_delete_the_engines_own_sidecars() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("x.db");
    for f in ["x.db", "x.db-wal", "x.db-shm", "x.db-journal", "x.db.wal"] {
        std::fs::write(d.path().join(f), b"abc").unwrap();
    }
    let (note, deleted) = AfterKill::DeleteWal.apply(Engine::Duckdb, &db);
    assert_eq!(note, "operator delete-wal: deleted x.db.wal (3 bytes)");
    assert!(deleted);
    assert!(d.path().join("x.db-wal").exists());
    AfterKill::DeleteWal.apply(Engine::Sqlite, &db);
    assert!(!d.path().join("x.db-wal").exists());
    assert!(d.path().join("x.db-journal").exists());
    let (note, _) = AfterKill::DbOnly.apply(Engine::Sqlite, &db);
    assert!(
        note.contains("x.db-shm") && note.contains("x.db-journal"),
        "{note}"
    );
    assert!(d.path().join("x.db").exists());
    assert_eq!(
        AfterKill::DeleteJournal.apply(Engine::Libsql, &db),
        (
            "operator delete-journal: nothing to delete".to_string(),
            false
        )
    );
    let mut o = ExecOptions::new(vec!["x".into()]);
    o.engine = Engine::Duckdb;
    o.after_kill = Some(AfterKill::DeleteJournal);
    assert!(o.validate().unwrap_err().contains("no rollback journal"));
}

#[test]
fn a_duckdb_wal_that_fails_to_replay_is_open_failed_with_duckdbs_words() {
    require_duckdb();
    let lab = lab(18);
    let db = lab.work.join("d.db");
    // A committed WAL that was never checkpointed, then damaged in the middle.
    let make = std::process::Command::new("python3")
        .args([
            "-c",
            "import duckdb, shutil, sys
c = duckdb.connect(sys.argv[1] + '.src')
c.execute(\"SET checkpoint_threshold = '1GB'\")
c.execute('CREATE TABLE t(seq INTEGER)')
c.execute('CHECKPOINT')
for i in range(1, 51): c.execute('INSERT INTO t VALUES (?)', [i])
shutil.copy(sys.argv[1] + '.src', sys.argv[1])
shutil.copy(sys.argv[1] + '.src.wal', sys.argv[1] + '.wal')",
            db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        make.status.success(),
        "{}",
        String::from_utf8_lossy(&make.stderr)
    );
    let wal = with_suffix(&db, ".wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    assert!(bytes.len() > 600, "the WAL holds the inserts");
    for b in &mut bytes[200..400] {
        *b = 0x5A;
    }
    std::fs::write(&wal, bytes).unwrap();
    let mut exec = ExecOptions::new(vec!["x".into()]);
    exec.engine = Engine::Duckdb;
    exec.recovered_sql = Some("SELECT max(seq) FROM t".into());
    let c = check::verify(&CheckEnv {
        exec: &exec,
        db: &db,
        acked: 50,
        acks: &[],
        timeout: Duration::from_secs(30),
        scratch: &lab.work,
        close_fds: &[],
    });
    assert_eq!(c.outcome, Outcome::OpenFailed, "{c:?}");
    assert!(
        c.detail.contains("Failure while replaying WAL"),
        "{}",
        c.detail
    );
    assert!(c.engine_version.is_some_and(|v| v.starts_with("duckdb ")));
}

/// libSQL through its PyPI wheel (`libsql`, prebuilt): installed once per test run if missing.
fn require_libsql() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = READY.get_or_init(|| pip_ready("libsql")) {
        panic!("LIBSQL TEST NOT RUN (and failed so you see it): {e}");
    }
}

fn libsql_writer(args: &[&str]) -> ExecOptions {
    let mut cmd = vec![
        "python3".to_string(),
        format!("{EXEC_DIR}/libsql_writer.py"),
        "{db}".to_string(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let mut o = ExecOptions::new(cmd);
    o.engine = Engine::Libsql;
    o.recovered_sql = Some("SELECT max(seq) FROM t".into());
    o.verify_sql = Some(check::tests::verify_sql());
    o
}

/// The negative control: libSQL in WAL + FULL keeps every acknowledged commit, plaintext or
/// encrypted, and the CSV names libSQL's SQLite.
fn libsql_survives_every_kill(seed: u64, key: Option<&str>) {
    require_libsql();
    let lab = lab(seed);
    let mut exec = libsql_writer(&["--commits", "2000"]);
    exec.key = key.map(str::to_string);
    let (exec, window) = lab.calibrated(exec);
    let t = Instant::now();
    let records = lab.trials(&exec, window, 12);
    let name = format!("libsql_writer.py wal key={key:?}");
    report(&name, &records, t.elapsed().as_secs_f64());
    for r in &records {
        assert_eq!(r.outcome, Outcome::Intact, "{r:?}");
        assert!(r.recovered_commits >= r.acked_commits, "{r:?}");
        assert_eq!(r.profile, "exec:libsql_writer.py");
    }
    let writing: Vec<_> = records.iter().filter(|r| r.acked_commits > 0).collect();
    assert!(writing.len() >= 8, "{:?}", counts(&records));
    for r in writing {
        assert!(r.sqlite_version.starts_with("libsql 3."), "{r:?}");
        assert_eq!((&*r.journal_mode, &*r.synchronous), ("wal", "full"));
    }
}

#[test]
fn the_libsql_writer_in_wal_mode_survives_every_kill() {
    libsql_survives_every_kill(21, None);
}

#[test]
fn the_encrypted_libsql_writer_survives_every_kill() {
    libsql_survives_every_kill(22, Some("torture-test-key"));
}

/// Runs libsql_writer.py to its end on `db` with `key` (as `TORTURE_KEY`).
fn write_with_libsql(db: &Path, key: Option<&str>, args: &[&str]) {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(format!("{EXEC_DIR}/libsql_writer.py"))
        .arg(db)
        .args(args)
        .stdout(std::process::Stdio::null());
    if let Some(k) = key {
        cmd.env("TORTURE_KEY", k);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn libsql_check(exec: &ExecOptions, db: &Path, acked: u64, scratch: &Path) -> Check {
    check::verify(&CheckEnv {
        exec,
        db,
        acked,
        acks: &[],
        timeout: Duration::from_secs(30),
        scratch,
        close_fds: &[],
    })
}

#[test]
fn an_encrypted_libsql_file_opens_with_its_key_only() {
    require_libsql();
    let lab = lab(23);
    let db = lab.work.join("enc.db");
    write_with_libsql(&db, Some("right"), &["--commits", "30"]);
    // Really encrypted: no magic, the bundled SQLite cannot read it, libSQL's layout is seen.
    let bytes = std::fs::read(&db).unwrap();
    assert_ne!(&bytes[..16], b"SQLite format 3\0");
    assert!(check::encrypted_header(&bytes[..24]));
    let plain = rusqlite::Connection::open(&db).unwrap();
    let e = plain
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err();
    assert!(crate::verify::sqlite_error::is_notadb(&e), "{e}");
    drop(plain);

    let mut exec = libsql_writer(&[]);
    exec.key = Some("right".into());
    let c = libsql_check(&exec, &db, 30, &lab.work);
    assert_eq!((c.outcome, c.recovered), (Outcome::Intact, 30), "{c:?}");
    assert!(c.engine_version.is_some_and(|v| v.starts_with("libsql 3.")));
    // The positive controls: another key, no key, a key on a plaintext file.
    exec.key = Some("wrong".into());
    let c = libsql_check(&exec, &db, 30, &lab.work);
    assert_eq!(c.outcome, Outcome::WrongKey, "{c:?}");
    assert!(c.detail.contains("not a database"), "{}", c.detail);
    exec.key = None;
    let c = libsql_check(&exec, &db, 30, &lab.work);
    assert_eq!(c.outcome, Outcome::WrongKey, "{c:?}");
    assert!(c.detail.contains("no --key"), "{}", c.detail);
    let plain_db = lab.work.join("plain.db");
    write_with_libsql(&plain_db, None, &["--commits", "5"]);
    assert_eq!(
        &std::fs::read(&plain_db).unwrap()[..16],
        b"SQLite format 3\0"
    );
    exec.key = Some("right".into());
    let c = libsql_check(&exec, &plain_db, 5, &lab.work);
    assert_eq!(c.outcome, Outcome::WrongKey, "{c:?}");
    assert!(c.detail.contains("plaintext"), "{}", c.detail);
    // The right key on a file whose plaintext header bytes are damaged: not a key problem.
    let mut damaged = bytes.clone();
    damaged[16..24].fill(0xA5);
    std::fs::write(&db, &damaged).unwrap();
    let c = libsql_check(&exec, &db, 30, &lab.work);
    assert_eq!(c.outcome, Outcome::OpenFailed, "{c:?}");
    // Pages past the first damaged, with the right key: integrity_check or a read says so.
    let mut damaged = bytes;
    for b in &mut damaged[10 * 4096..14 * 4096] {
        *b ^= 0x5A;
    }
    std::fs::write(&db, &damaged).unwrap();
    let c = libsql_check(&exec, &db, 30, &lab.work);
    assert!(
        matches!(c.outcome, Outcome::Corrupt | Outcome::Atomicity),
        "{c:?}"
    );
}

#[test]
fn libsql_with_journal_mode_off_breaks_as_documented() {
    require_libsql();
    let lab = lab(24);
    let mut exec = libsql_writer(&[
        "--journal-mode",
        "off",
        "--synchronous",
        "off",
        "--commits",
        "300",
        "--transfers",
        "30",
        "--cache-size",
        "8",
    ]);
    exec.key = Some("k".into());
    let (exec, window) = lab.calibrated(exec);
    let t = Instant::now();
    let records = lab.trials(&exec, window, 16);
    report("libsql_writer.py off", &records, t.elapsed().as_secs_f64());
    let damaged: Vec<_> = records.iter().filter(|r| r.outcome.is_damage()).collect();
    assert!(damaged.len() >= 3, "{:?}", counts(&records));
    for r in &damaged {
        assert_ne!(r.outcome, Outcome::WrongKey, "{r:?}");
        assert_eq!(r.journal_mode, "off");
        assert_eq!(r.verdict, Verdict::Expected, "{r:?}");
    }
}

#[test]
fn a_python_without_the_libsql_package_is_one_line_naming_pip_install() {
    let lab = lab(25);
    // python3 -S skips site-packages, where pip puts libsql.
    let py = lab.work.join("python-without-site");
    std::fs::write(&py, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    std::fs::set_permissions(&py, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut exec = libsql_writer(&[]);
    exec.python = py.to_string_lossy().into_owned();
    let e = check::python_ready(&exec).unwrap_err();
    assert!(e.contains("pip install libsql"), "{e}");
    assert!(e.contains("No module named 'libsql'"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // The check itself says the same if the package goes missing mid-run.
    let db = lab.work.join("x.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(seq)")
        .unwrap();
    let c = libsql_check(&exec, &db, 1, &lab.work);
    assert_eq!(c.outcome, Outcome::WorkerError, "{c:?}");
    assert!(c.detail.contains("pip install libsql"), "{}", c.detail);
    exec.engine = Engine::Sqlite;
    assert!(check::python_ready(&exec).is_ok(), "SQLite needs no Python");
}

#[test]
fn the_journal_mode_judged_is_the_one_read_back_then_declared_then_seen() {
    let mut o = ExecOptions::new(vec!["x".into()]);
    assert_eq!(journal_mode(&o, None, false).0, "?");
    assert_eq!(journal_mode(&o, None, true).0, "wal");
    assert_eq!(journal_mode(&o, Some("off"), true).0, "off");
    o.journal_mode = Some("delete".into());
    assert_eq!(journal_mode(&o, None, true).0, "delete");
    let (m, note) = journal_mode(&o, Some("wal"), false);
    assert_eq!(m, "wal");
    assert!(note.contains("declared"), "{note}");
    o.engine = Engine::Duckdb;
    assert_eq!(journal_mode(&o, Some("wal"), true).0, "?");
}
