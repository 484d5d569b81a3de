//! Test helpers for the fault layer: a lock that keeps its tests from reconfiguring the
//! process-wide shim under each other, scratch directories on tmpfs, forked writer children, a
//! small commit workload that acknowledges each commit, and the check a slot would run afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use rusqlite::{params, Connection, OpenFlags};

use super::config::{CrashAt, FaultConfig};
use super::vfs::{self, VFS_NAME};

/// The shim's configuration is per process, and so is this lock: every test that touches the shim
/// holds it.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A scratch directory, on tmpfs when there is one (fsync on the virtual disk costs milliseconds).
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("torture-fault-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

/// Creates the starting database of a trial with plain SQLite (not through the shim, not logged):
/// it exists before the writer starts, as in production.
pub fn make_db(path: &Path, journal_mode: &str) {
    let conn = Connection::open(path).expect("open template");
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode={journal_mode}"), [], |r| {
            r.get(0)
        })
        .expect("journal_mode");
    assert_eq!(mode, journal_mode);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, pad BLOB NOT NULL);")
        .expect("schema");
}

/// What a test writer does: `commits` autocommit inserts of row `i` with `pad` bytes, each
/// acknowledged (one O_APPEND line) only after COMMIT returned.
pub struct Workload<'a> {
    pub journal_mode: &'a str,
    pub synchronous: &'a str,
    pub commits: u64,
    pub pad: usize,
}

impl Workload<'_> {
    pub fn run(&self, db: &Path, acks: Option<&Path>) -> rusqlite::Result<()> {
        let conn = Connection::open_with_flags_and_vfs(db, OpenFlags::default(), VFS_NAME)?;
        let mode: String = conn.query_row(
            &format!("PRAGMA journal_mode={}", self.journal_mode),
            [],
            |r| r.get(0),
        )?;
        assert_eq!(mode, self.journal_mode, "journal mode through the shim");
        // A small autocheckpoint so that WAL runs checkpoint and restart the WAL too.
        conn.execute_batch(&format!(
            "PRAGMA synchronous={}; PRAGMA wal_autocheckpoint=8;",
            self.synchronous
        ))?;
        let mut acks = acks.map(|p| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .expect("ack file")
        });
        for i in 1..=self.commits {
            let pad = vec![(i % 251) as u8; self.pad];
            conn.execute(
                "INSERT INTO t(id, pad) VALUES (?1, ?2)",
                params![i as i64, pad],
            )?;
            if let Some(f) = &mut acks {
                f.write_all(format!("{i}\n").as_bytes())
                    .expect("acknowledge");
            }
        }
        conn.close().map_err(|(_, e)| e)
    }
}

/// Runs `body` in a forked child whose exit code is its return value, and reaps it.
///
/// The test process has other threads (other tests) that may hold a lock inside SQLite or malloc
/// at the instant of the fork; a child would then wait forever. An alarm ends such a child, and the
/// (deterministic) run is repeated.
pub fn in_child(body: impl Fn() -> i32) -> WaitStatus {
    const HANG_SECS: u32 = 10;
    for attempt in 0..3 {
        let child = crate::process::fork_child(&[], || {
            // SAFETY: alarm takes no pointers.
            unsafe { libc::alarm(HANG_SECS) };
            body()
        })
        .expect("fork");
        let status = waitpid(child, None).expect("waitpid");
        if matches!(status, WaitStatus::Signaled(_, Signal::SIGALRM, _)) && attempt < 2 {
            continue;
        }
        return status;
    }
    unreachable!("the loop returns on its last attempt")
}

pub fn killed(status: WaitStatus) -> bool {
    matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _))
}

/// One trial's files: a fresh copy of the starting database and its acknowledgements.
pub struct Trial {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub acks: PathBuf,
}

impl Trial {
    pub fn new(template: &Path) -> Trial {
        let dir = scratch_dir();
        let db = dir.path().join("trial.db");
        std::fs::copy(template, &db).expect("copy template");
        Trial {
            acks: dir.path().join("acks"),
            db,
            dir,
        }
    }

    /// Runs `workload` in a forked writer configured with `crash_at`; returns how the
    /// writer ended. The PRNG seed makes SQLite's own random choices (WAL salts) repeatable.
    pub fn run(&self, workload: &Workload<'_>, crash_at: Option<CrashAt>) -> WaitStatus {
        in_child(|| {
            vfs::configure(FaultConfig {
                crash_at,
                sqlite_prng_seed: Some(7),
            })
            .expect("configure");
            match workload.run(&self.db, Some(&self.acks)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("writer failed: {e}");
                    1
                }
            }
        })
    }

    /// The last commit the writer acknowledged.
    pub fn acked(&self) -> u64 {
        std::fs::read_to_string(&self.acks)
            .unwrap_or_default()
            .lines()
            .last()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
    }

    /// Reads the files as a slot would after the crash.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        ["", "-wal", "-journal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = self.db.as_os_str().to_owned();
                p.push(suffix);
                std::fs::read(PathBuf::from(p))
                    .ok()
                    .map(|b| (suffix.to_string(), b))
            })
            .collect()
    }
}

/// How many counted operations `workload` makes from start to close, measured in an uncrashed
/// child (the count is per process, so it cannot be read from here).
pub fn measure_ops(template: &Path, workload: &Workload<'_>) -> u64 {
    let trial = Trial::new(template);
    let out = trial.dir.path().join("ops");
    let status = in_child(|| {
        vfs::configure(FaultConfig::default()).expect("configure");
        if workload.run(&trial.db, None).is_err() {
            return 1;
        }
        std::fs::write(&out, vfs::ops_so_far().to_string()).expect("write ops");
        0
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    std::fs::read_to_string(&out)
        .expect("ops")
        .parse()
        .expect("number")
}

/// What the slot's oracle would find.
#[derive(Debug)]
pub struct Check {
    /// "ok", or what integrity_check (or opening) reported.
    pub integrity: String,
    /// How many of the rows 1..=acked are present.
    pub present: u64,
}

impl Check {
    pub fn intact(&self) -> bool {
        self.integrity == "ok"
    }
}

/// Opens `db` with plain SQLite (recovering it as any application would) and checks it.
pub fn check(db: &Path, acked: u64) -> Check {
    let conn = match Connection::open(db) {
        Ok(c) => c,
        Err(e) => {
            return Check {
                integrity: format!("open: {e}"),
                present: 0,
            }
        }
    };
    let integrity = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map(|rows| rows.join("; "))
        .unwrap_or_else(|e| format!("error: {e}"));
    let present = conn
        .query_row(
            "SELECT count(*) FROM t WHERE id <= ?1",
            [acked as i64],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .unwrap_or(0);
    Check { integrity, present }
}

/// integrity_check and the row count of `t`, with plain SQLite.
pub fn check_rows(db: &Path) -> (String, i64) {
    let conn = Connection::open(db).expect("open");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    let rows = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("count");
    (integrity, rows)
}
