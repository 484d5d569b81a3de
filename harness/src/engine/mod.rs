//! Which SQLite the trials drive: the bundled SQLite, or SQLCipher (a build variant, cargo feature
//! `sqlcipher`) with `PRAGMA key` run first on every connection, as the postmortems' apps do.
//!
//! The engine is a property of the process: a slot installs it once, before it opens anything, and
//! every connection a trial opens (template, writers, oracle, recovery) goes through [`open`].

pub mod versions;

use std::path::Path;
use std::sync::OnceLock;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

/// The suffixes of the files that make up one database on disk.
pub const SIDECARS: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// `db` with `suffix` appended to its file name (`x.db` → `x.db-wal`).
pub fn with_suffix(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    std::path::PathBuf::from(s)
}

/// The key `--engine sqlcipher` uses when `--key` is not given: a raw 256-bit key, which SQLCipher
/// uses as is. A passphrase goes through PBKDF2 (256,000 rounds, ~0.1 s) on every open, which
/// would make each trial ~100× slower without changing what a crash does to the file.
pub const DEFAULT_KEY: &str = "x'746f7274757265206c616220746573742d6b6579206e6f742061207365637265'";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Engine {
    #[default]
    Sqlite,
    Sqlcipher {
        key: String,
    },
}

/// This binary links SQLCipher instead of plain SQLite.
pub const BUILT_WITH_SQLCIPHER: bool = cfg!(feature = "sqlcipher");

impl Engine {
    /// `--engine NAME [--key KEY]`, checked against what this binary was built with.
    pub fn parse(name: &str, key: Option<&str>) -> Result<Engine, String> {
        let engine = match name {
            "sqlite" => {
                if key.is_some() {
                    return Err("--key needs --engine sqlcipher".into());
                }
                Engine::Sqlite
            }
            "sqlcipher" => Engine::Sqlcipher {
                key: key.unwrap_or(DEFAULT_KEY).to_string(),
            },
            other => {
                return Err(format!(
                "unknown engine {other:?}; give sqlite or sqlcipher (other programs: torture exec)"
            ))
            }
        };
        engine.check_build()?;
        Ok(engine)
    }

    /// An engine this binary cannot run is a usage error that names the build to use.
    pub fn check_build(&self) -> Result<(), String> {
        // The SQLCipher build also runs plain `sqlite` (no key: SQLCipher is then plain SQLite of
        // the same version), which makes the fairest encrypted-vs-plain comparison.
        match (self, BUILT_WITH_SQLCIPHER) {
            (Engine::Sqlcipher { .. }, false) => Err(
                "this torture was built without SQLCipher; build the variant with scripts/build-sqlcipher \
                 and run target/sqlcipher/release/torture"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Sqlcipher { .. } => "sqlcipher",
        }
    }

    fn key(&self) -> Option<&str> {
        match self {
            Engine::Sqlite => None,
            Engine::Sqlcipher { key } => Some(key),
        }
    }
}

static CURRENT: OnceLock<Engine> = OnceLock::new();

/// Makes `engine` the one [`open`] uses in this process (and the children it forks). The first
/// call wins; a process only ever runs one engine.
pub fn install(engine: &Engine) {
    let _ = CURRENT.set(engine.clone());
    if BUILT_WITH_SQLCIPHER {
        // SQLCipher logs every page that fails to decrypt to stderr; the oracle reports those
        // itself, in the CSV. The level is process-wide.
        if let Ok(c) = Connection::open_in_memory() {
            let _ = c.query_row("PRAGMA cipher_log_level = NONE", [], |_| Ok(()));
        }
    }
}

/// The engine installed in this process (plain SQLite if none was).
pub fn current() -> &'static Engine {
    CURRENT.get_or_init(Engine::default)
}

/// Opens `path` with the installed engine: on SQLCipher the key is the first statement run.
pub fn open(path: &Path, flags: OpenFlags, vfs: Option<&str>) -> rusqlite::Result<Connection> {
    let conn = match vfs {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs)?,
        None => Connection::open_with_flags(path, flags)?,
    };
    if let Some(key) = current().key() {
        conn.pragma_update(None, "key", key)?;
    }
    Ok(conn)
}

/// The library version for the CSV: `3.54.1`, or `3.53.4 sqlcipher 4.19.0 community`.
pub fn version() -> String {
    let sqlite = rusqlite::version().to_string();
    if !BUILT_WITH_SQLCIPHER {
        return sqlite;
    }
    let cipher = Connection::open_in_memory()
        .and_then(|c| c.query_row("PRAGMA cipher_version", [], |r| r.get::<_, String>(0)))
        .unwrap_or_else(|_| "?".into());
    format!("{sqlite} sqlcipher {cipher}")
}

/// Why SQLCipher answered "file is not a database" for a file the trial wrote with `key`:
/// `Some(detail)` when the key does not fit the file at all (a plaintext database, or no page
/// authenticates), `None` when the key fits and the file is damaged.
pub fn key_mismatch(db: &Path, key: &str) -> Option<String> {
    let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if let Ok(c) = Connection::open_with_flags(db, ro) {
        let plain = c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        });
        if plain.is_ok() {
            return Some(
                "the file is a plaintext SQLite database: the key was never applied".into(),
            );
        }
    }
    let pages = cipher_page_failures(db, key)?;
    // One page failing is damage; every page of a file of several failing is a key that does not
    // fit (in a lab run writers and oracle share the key, so only a file rewritten and torn
    // throughout could look the same — still damage, and the detail says so).
    (pages.total >= 2 && pages.failed >= pages.total).then(|| {
        format!(
            "no page authenticates with the key ({} of {} fail HMAC: a different key, or every page damaged)",
            pages.failed, pages.total
        )
    })
}

/// Pages of `db` that fail SQLCipher's HMAC check under `key`, out of all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCheck {
    pub failed: u64,
    pub total: u64,
}

/// Runs `PRAGMA cipher_integrity_check`, which authenticates every page of the main file without
/// parsing the b-tree (so it works when page 1 is damaged). `None` when it could not run.
pub fn cipher_page_failures(db: &Path, key: &str) -> Option<PageCheck> {
    if !BUILT_WITH_SQLCIPHER {
        return None;
    }
    let ro = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(db, ro).ok()?;
    c.pragma_update(None, "key", key).ok()?;
    let page_size = c
        .query_row("PRAGMA cipher_page_size", [], |r| r.get::<_, i64>(0))
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(4096) as u64;
    let total = std::fs::metadata(db).ok()?.len().div_ceil(page_size);
    let mut stmt = c.prepare("PRAGMA cipher_integrity_check").ok()?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .ok()?
        .filter_map(Result::ok)
        .collect();
    let failed = lines.iter().filter(|l| l.contains("HMAC")).count() as u64;
    Some(PageCheck { failed, total })
}
