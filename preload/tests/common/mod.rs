//! What the fault layer's tests share: the preload library, Python, recording a run, checking a
//! crash state with rusqlite.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use torture_preload::{read_log, snapshot, AckedCommits, CrashState, Log, Snapshot, Writer};

/// `libtorture_preload.so` of this build (beside the test binary's folder). Building the package
/// builds it; a missing one is an error naming the fix.
pub fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    torture_preload::find_library(&exe).unwrap_or_else(|| {
        panic!(
            "libtorture_preload.so not found next to {}: run `cargo build --release -p torture-preload` \
             (or `cargo test --release -p torture-preload`, which builds it)",
            exe.display()
        )
    })
}

/// The real Python interpreter (not a pyenv shim script), found through `python3` on PATH.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys, sqlite3; print(sys.executable)"])
            .output()
            .unwrap_or_else(|e| {
                panic!("python3 with the sqlite3 module is needed: install it (apt-get install python3): {e}")
            });
        assert!(
            out.status.success(),
            "python3 cannot import sqlite3: install python3 with its sqlite3 module ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

pub fn writer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/writer.py")
}

/// One recorded run: the folder, its contents before the run, the log, the program's output.
pub struct Recording {
    pub tmp: tempfile::TempDir,
    pub start: Snapshot,
    pub log: Log,
    pub output: Output,
}

impl Recording {
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("db")
    }
    pub fn db(&self) -> PathBuf {
        self.dir().join("x.db")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
}

pub fn new_folder() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(tmp.path().join("db")).expect("db folder");
    tmp
}

/// Prepares `x.db` in `dir` without the recorder: the schema, the journal mode, no commits.
pub fn prepare(dir: &Path, journal_mode: &str) {
    let out = Command::new(python())
        .arg(writer_script())
        .arg(dir.join("x.db"))
        .args(["--commits", "0", "--journal-mode", journal_mode])
        .output()
        .expect("run writer.py");
    assert!(
        out.status.success(),
        "prepare: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` under the recorder with the folder `tmp/db` and the log `tmp/log`.
pub fn record_cmd(
    tmp: tempfile::TempDir,
    mut cmd: Command,
    extra_env: &[(&str, &str)],
) -> Recording {
    let dir = tmp.path().join("db");
    let log_path = tmp.path().join("log");
    let start = snapshot(&dir).expect("snapshot");
    cmd.env("LD_PRELOAD", library())
        .env("TORTURE_FAULTFS_DIR", &dir)
        .env("TORTURE_FAULTFS_LOG", &log_path)
        .env("TORTURE_FAULTFS_ACKFD", "1");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    // Its own process group, as the lab runs programs: TORTURE_FAULTFS_CRASH_AT kills the group.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let output = cmd.output().expect("run the program");
    let log = read_log(&log_path).expect("read the log");
    Recording {
        tmp,
        start,
        log,
        output,
    }
}

/// Runs writer.py on a prepared database under the recorder.
pub fn record_writer(journal_mode: &str, args: &[&str], extra_env: &[(&str, &str)]) -> Recording {
    let tmp = new_folder();
    prepare(&tmp.path().join("db"), journal_mode);
    let mut cmd = Command::new(python());
    cmd.arg(writer_script())
        .arg(tmp.path().join("db/x.db"))
        .args(["--journal-mode", journal_mode])
        .args(args);
    let r = record_cmd(tmp, cmd, extra_env);
    assert!(
        r.output.status.success(),
        "writer.py failed: {}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    r
}

/// What a crash state holds, as SQLite sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// integrity_check ok and every acknowledged commit present.
    Intact,
    /// integrity_check ok, these acknowledged commits missing.
    Lost(usize),
    /// The database cannot be read or fails integrity_check.
    Damaged(String),
}

fn writer_name(w: &Writer) -> String {
    match w {
        Writer::Id(id) => id.clone(),
        Writer::Pid(_) => String::new(),
    }
}

/// Opens `dir/x.db` with rusqlite (recovery included), runs integrity_check, finds the acked rows.
pub fn check_db(dir: &Path, acks: &AckedCommits) -> Verdict {
    let check = || -> rusqlite::Result<Verdict> {
        let con = rusqlite::Connection::open(dir.join("x.db"))?;
        // A scratch copy: no fsync, no checkpoint at close (only reads and recovery matter).
        con.execute_batch("PRAGMA synchronous=OFF")?;
        con.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        let ic: String = con.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ic != "ok" {
            return Ok(Verdict::Damaged(ic));
        }
        let has_t: i64 = con.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 't'",
            [],
            |r| r.get(0),
        )?;
        let mut present = BTreeSet::new();
        if has_t > 0 {
            let mut st = con.prepare("SELECT seq, writer FROM t")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                present.insert(row?);
            }
        }
        let lost = acks
            .all()
            .filter(|(w, n)| !present.contains(&(*n, writer_name(w))))
            .count();
        Ok(if lost == 0 {
            Verdict::Intact
        } else {
            Verdict::Lost(lost)
        })
    };
    match check() {
        Ok(v) => v,
        Err(e) => Verdict::Damaged(e.to_string()),
    }
}

/// Counts of checked crash states.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub states: usize,
    pub intact: usize,
    pub lost: usize,
    pub damaged: usize,
    pub first_damage: Option<String>,
    pub max_acks: usize,
}

/// Writes each state to a scratch folder and checks it.
pub fn check_states(states: impl Iterator<Item = CrashState>) -> Tally {
    // In memory when the machine has /dev/shm: the checks write (recovery) and would fsync.
    let scratch = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm"),
        false => tempfile::tempdir(),
    }
    .expect("scratch");
    let mut t = Tally::default();
    for s in states {
        s.write_to(scratch.path()).expect("write crash state");
        t.states += 1;
        t.max_acks = t.max_acks.max(s.acks.total());
        match check_db(scratch.path(), &s.acks) {
            Verdict::Intact => t.intact += 1,
            Verdict::Lost(_) => t.lost += 1,
            Verdict::Damaged(why) => {
                t.damaged += 1;
                t.first_damage
                    .get_or_insert(format!("cut {} {:?}: {why}", s.cut.after, s.variant));
            }
        }
    }
    t
}
