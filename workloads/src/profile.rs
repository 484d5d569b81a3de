//! Pragma profiles: the settings a worker applies to every connection, as data.
//!
//! Built-in profiles are named `<journal_mode>-<synchronous>` (`wal-full`, `delete-normal`, …) plus a few
//! named after the postmortems' own configurations. Custom profiles come from a strict TOML file. Every
//! pragma is read back after it is set: the value in force is what gets recorded, and a silent fallback
//! (WAL asked for, `delete` answered) is reported rather than hidden.

use std::fmt;
use std::path::Path;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// `PRAGMA journal_mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalMode {
    Delete,
    Truncate,
    Persist,
    Wal,
    Memory,
    Off,
}

impl JournalMode {
    pub const ALL: [JournalMode; 6] = [
        JournalMode::Delete,
        JournalMode::Truncate,
        JournalMode::Persist,
        JournalMode::Wal,
        JournalMode::Memory,
        JournalMode::Off,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JournalMode::Delete => "delete",
            JournalMode::Truncate => "truncate",
            JournalMode::Persist => "persist",
            JournalMode::Wal => "wal",
            JournalMode::Memory => "memory",
            JournalMode::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// Modes that keep a durable undo/redo record on disk. SQLite promises these survive a process
    /// crash; `memory` and `off` make no such promise.
    pub fn is_crash_safe(self) -> bool {
        !matches!(self, JournalMode::Memory | JournalMode::Off)
    }
}

/// `PRAGMA synchronous` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Off,
    Normal,
    Full,
    Extra,
}

impl Synchronous {
    pub const ALL: [Synchronous; 4] = [
        Synchronous::Off,
        Synchronous::Normal,
        Synchronous::Full,
        Synchronous::Extra,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Off => "off",
            Synchronous::Normal => "normal",
            Synchronous::Full => "full",
            Synchronous::Extra => "extra",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// The integer `PRAGMA synchronous` answers with.
    pub fn from_level(level: i64) -> Option<Self> {
        Self::ALL.get(usize::try_from(level).ok()?).copied()
    }
}

/// `PRAGMA locking_mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockingMode {
    Normal,
    Exclusive,
}

impl LockingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockingMode::Normal => "normal",
            LockingMode::Exclusive => "exclusive",
        }
    }
}

/// One pragma profile: what every connection of every writer is set to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub journal_mode: JournalMode,
    pub synchronous: Synchronous,
    /// Connections per writer process, each driven by its own thread (a pool).
    pub connections: u32,
    /// Writer processes sharing the database.
    pub processes: u32,
    pub busy_timeout_ms: u32,
    pub wal_autocheckpoint: u32,
    pub cache_size: i64,
    pub page_size: u32,
    pub locking_mode: LockingMode,
    pub mmap_size: u64,
}

/// A custom profile as written in a TOML file: every field but `name` is optional and defaults to the
/// `base` profile's (or the built-in defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    name: String,
    base: Option<String>,
    journal_mode: Option<JournalMode>,
    synchronous: Option<Synchronous>,
    connections: Option<u32>,
    processes: Option<u32>,
    busy_timeout_ms: Option<u32>,
    wal_autocheckpoint: Option<u32>,
    cache_size: Option<i64>,
    page_size: Option<u32>,
    locking_mode: Option<LockingMode>,
    mmap_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    profile: Vec<ProfileSpec>,
}

/// Why a profile could not be had. Each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile `{0}`; run `torture profiles` to list the built-in ones, or define it in a --profile-file")]
    Unknown(String),
    #[error("cannot read profile file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed profile file {path}: {message}")]
    Malformed { path: String, message: String },
    #[error("profile `{name}`: {message}")]
    Invalid { name: String, message: String },
}

/// The longest profile name: it is a CSV column and a folder name in reports.
pub const MAX_NAME: usize = 64;

/// A name short enough to quote in a one-line message.
fn shortened(name: &str) -> String {
    if name.len() <= MAX_NAME {
        name.to_string()
    } else {
        let mut end = 40;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &name[..end])
    }
}

/// A TOML error as one line that names the line and the key: `line 3, key \`connections\`: invalid
/// type: string "four", expected u32`.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text[..start].rsplit('\n').next().unwrap_or("").to_string()
        + text[start..].split('\n').next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.contains('[') => {
            format!("line {line_no}, key `{}`: {message}", shortened(key.trim()))
        }
        _ => format!("line {line_no}: {message}"),
    }
}

impl Profile {
    fn with_modes(journal_mode: JournalMode, synchronous: Synchronous) -> Profile {
        Profile {
            name: format!("{}-{}", journal_mode.as_str(), synchronous.as_str()),
            journal_mode,
            synchronous,
            connections: 1,
            processes: 1,
            busy_timeout_ms: 5000,
            wal_autocheckpoint: 1000,
            cache_size: -2000,
            page_size: 4096,
            locking_mode: LockingMode::Normal,
            mmap_size: 0,
        }
    }

    /// Every built-in profile: the 24 `<journal_mode>-<synchronous>` pairs, then the postmortems' own.
    pub fn builtins() -> Vec<Profile> {
        let mut all = Vec::new();
        for jm in JournalMode::ALL {
            for sync in Synchronous::ALL {
                all.push(Profile::with_modes(jm, sync));
            }
        }
        // Seed 000 before its fix: DELETE mode, an r2d2 pool of 10, no busy_timeout.
        all.push(Profile {
            name: "delete-full-pool10-nobusy".into(),
            connections: 10,
            busy_timeout_ms: 0,
            ..Profile::with_modes(JournalMode::Delete, Synchronous::Full)
        });
        // Seed 000 after its fix: WAL, NORMAL, pool of 10, busy_timeout 5000, 64 MB cache.
        all.push(Profile {
            name: "wal-normal-pool10".into(),
            connections: 10,
            cache_size: -64000,
            ..Profile::with_modes(JournalMode::Wal, Synchronous::Normal)
        });
        // Several processes writing one database (seed 004's app + scripts).
        all.push(Profile {
            name: "wal-full-4proc".into(),
            processes: 4,
            ..Profile::with_modes(JournalMode::Wal, Synchronous::Full)
        });
        all.push(Profile {
            name: "delete-full-4proc".into(),
            processes: 4,
            ..Profile::with_modes(JournalMode::Delete, Synchronous::Full)
        });
        all
    }

    pub fn builtin(name: &str) -> Option<Profile> {
        Self::builtins().into_iter().find(|p| p.name == name)
    }

    /// Loads every profile of a TOML file (`[[profile]]` tables), strictly.
    pub fn load_file(path: &Path) -> Result<Vec<Profile>, ProfileError> {
        let text = read_profile_text(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_toml(&text).map_err(|e| match e {
            ProfileError::Malformed { message, .. } => ProfileError::Malformed {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// The largest profile file read (a profile is a few lines; `/dev/zero` is not one).
    pub const MAX_FILE_BYTES: u64 = 1 << 20;

    pub fn parse_toml(text: &str) -> Result<Vec<Profile>, ProfileError> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| ProfileError::Malformed {
            path: String::new(),
            message: toml_message(text, &e),
        })?;
        let mut out: Vec<Profile> = Vec::new();
        for spec in file.profile {
            let base = match &spec.base {
                Some(b) => out
                    .iter()
                    .find(|p| &p.name == b)
                    .cloned()
                    .or_else(|| Profile::builtin(b))
                    .ok_or_else(|| ProfileError::Invalid {
                        name: spec.name.clone(),
                        message: format!("base `{b}` is neither built in nor defined above it"),
                    })?,
                None => Profile::with_modes(
                    spec.journal_mode.unwrap_or(JournalMode::Wal),
                    spec.synchronous.unwrap_or(Synchronous::Full),
                ),
            };
            let p = Profile {
                name: spec.name,
                journal_mode: spec.journal_mode.unwrap_or(base.journal_mode),
                synchronous: spec.synchronous.unwrap_or(base.synchronous),
                connections: spec.connections.unwrap_or(base.connections),
                processes: spec.processes.unwrap_or(base.processes),
                busy_timeout_ms: spec.busy_timeout_ms.unwrap_or(base.busy_timeout_ms),
                wal_autocheckpoint: spec.wal_autocheckpoint.unwrap_or(base.wal_autocheckpoint),
                cache_size: spec.cache_size.unwrap_or(base.cache_size),
                page_size: spec.page_size.unwrap_or(base.page_size),
                locking_mode: spec.locking_mode.unwrap_or(base.locking_mode),
                mmap_size: spec.mmap_size.unwrap_or(base.mmap_size),
            };
            p.validate()?;
            let clash = if Profile::builtin(&p.name).is_some() {
                Some("is the name of a built-in profile; give yours another name (`base = \"NAME\"` starts from a built-in)")
            } else if out.iter().any(|q| q.name == p.name) {
                Some("is defined twice in the file; give each profile its own name")
            } else {
                None
            };
            if let Some(message) = clash {
                return Err(ProfileError::Invalid {
                    name: p.name,
                    message: message.into(),
                });
            }
            out.push(p);
        }
        if out.is_empty() {
            return Err(ProfileError::Malformed {
                path: String::new(),
                message: "no [[profile]] table".into(),
            });
        }
        Ok(out)
    }

    /// Checks the values SQLite would otherwise reject or silently ignore.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            name: shortened(&self.name),
            message,
        };
        if self.name.len() > MAX_NAME {
            return Err(invalid(format!(
                "the name is {} bytes long; give at most {MAX_NAME}",
                self.name.len()
            )));
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(
                "name must be non-empty and use only letters, digits, '-', '_' or '.'".into(),
            ));
        }
        if !(512..=65536).contains(&self.page_size) || !self.page_size.is_power_of_two() {
            return Err(invalid(format!(
                "page_size {} is not a power of two from 512 to 65536",
                self.page_size
            )));
        }
        if !(1..=64).contains(&self.connections) {
            return Err(invalid(format!(
                "connections {} is not from 1 to 64",
                self.connections
            )));
        }
        if !(1..=64).contains(&self.processes) {
            return Err(invalid(format!(
                "processes {} is not from 1 to 64",
                self.processes
            )));
        }
        Ok(())
    }

    /// Writers in a trial: one per connection of every process.
    pub fn writers(&self) -> u32 {
        self.connections * self.processes
    }

    /// One line describing what the profile sets, for `torture profiles`.
    pub fn describe(&self) -> String {
        format!(
            "journal_mode={} synchronous={} processes={} connections={} busy_timeout={}ms \
             wal_autocheckpoint={} cache_size={} page_size={} locking_mode={} mmap_size={}",
            self.journal_mode.as_str(),
            self.synchronous.as_str(),
            self.processes,
            self.connections,
            self.busy_timeout_ms,
            self.wal_autocheckpoint,
            self.cache_size,
            self.page_size,
            self.locking_mode.as_str(),
            self.mmap_size
        )
    }

    /// Settings that belong to the database file rather than the connection: applied once, when the
    /// trial's starting database is made (page size, and WAL, which is persistent).
    pub fn prepare_new_database(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.pragma_update(None, "page_size", self.page_size)?;
        if self.journal_mode == JournalMode::Wal {
            let _: String = conn.query_row("PRAGMA journal_mode=wal", [], |r| r.get(0))?;
        }
        Ok(())
    }

    /// Applies the profile to a connection and reads every pragma back.
    pub fn apply(&self, conn: &Connection) -> rusqlite::Result<InForce> {
        conn.pragma_update(None, "busy_timeout", self.busy_timeout_ms)?;
        if self.locking_mode == LockingMode::Exclusive {
            let _: String = conn.query_row("PRAGMA locking_mode=exclusive", [], |r| r.get(0))?;
        }
        conn.pragma_update(None, "cache_size", self.cache_size)?;
        if self.mmap_size > 0 {
            let _: i64 =
                conn.query_row(&format!("PRAGMA mmap_size={}", self.mmap_size), [], |r| {
                    r.get(0)
                })?;
        }
        let journal_mode: String = conn.query_row(
            &format!("PRAGMA journal_mode={}", self.journal_mode.as_str()),
            [],
            |r| r.get(0),
        )?;
        conn.pragma_update(None, "synchronous", self.synchronous.as_str())?;
        if self.journal_mode == JournalMode::Wal {
            let _: i64 = conn.query_row(
                &format!("PRAGMA wal_autocheckpoint={}", self.wal_autocheckpoint),
                [],
                |r| r.get(0),
            )?;
        }
        let sync_level: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        let locking_mode: String = conn.query_row("PRAGMA locking_mode", [], |r| r.get(0))?;
        let mmap_size: i64 = if self.mmap_size > 0 {
            conn.query_row("PRAGMA mmap_size", [], |r| r.get(0))?
        } else {
            0
        };
        let in_force = InForce {
            journal_mode: journal_mode.to_ascii_lowercase(),
            synchronous: Synchronous::from_level(sync_level)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| sync_level.to_string()),
            locking_mode: locking_mode.to_ascii_lowercase(),
            mmap_size: mmap_size.max(0) as u64,
        };
        Ok(in_force)
    }

    /// What differs between this profile and the values a connection reported in force.
    pub fn fallbacks(&self, in_force: &InForce) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: &str, asked: &str, got: &str| {
            if asked != got {
                out.push(format!("{what} {asked}->{got}"));
            }
        };
        check(
            "journal_mode",
            self.journal_mode.as_str(),
            &in_force.journal_mode,
        );
        check(
            "synchronous",
            self.synchronous.as_str(),
            &in_force.synchronous,
        );
        check(
            "locking_mode",
            self.locking_mode.as_str(),
            &in_force.locking_mode,
        );
        check(
            "mmap_size",
            &self.mmap_size.to_string(),
            &in_force.mmap_size.to_string(),
        );
        out
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The pragma values a connection answered with after the profile was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    pub journal_mode: String,
    pub synchronous: String,
    pub locking_mode: String,
    pub mmap_size: u64,
}

/// A profile file's text: a regular file only (a FIFO or `/dev/urandom` would never end), at most
/// [`Profile::MAX_FILE_BYTES`].
fn read_profile_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other(
            "not a regular file; give a TOML file of [[profile]] tables",
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(Profile::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > Profile::MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB; a profile file is a few lines of TOML",
            Profile::MAX_FILE_BYTES / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text; give a TOML file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_cover_every_journal_mode_and_synchronous_pair() {
        let all = Profile::builtins();
        for jm in JournalMode::ALL {
            for s in Synchronous::ALL {
                let name = format!("{}-{}", jm.as_str(), s.as_str());
                let p = all.iter().find(|p| p.name == name).expect(&name);
                assert_eq!((p.journal_mode, p.synchronous), (jm, s));
            }
        }
        let mut names: Vec<_> = all.iter().map(|p| p.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len(), "built-in names are unique");
    }

    #[test]
    fn toml_profile_inherits_from_its_base() {
        let p = Profile::parse_toml(
            "[[profile]]\nname = \"prod\"\nbase = \"wal-normal-pool10\"\nbusy_timeout_ms = 0\n",
        )
        .unwrap();
        assert_eq!(p[0].connections, 10);
        assert_eq!(p[0].busy_timeout_ms, 0);
        assert_eq!(p[0].journal_mode, JournalMode::Wal);
    }

    #[test]
    fn toml_rejects_unknown_keys_and_bad_values() {
        let unknown = Profile::parse_toml("[[profile]]\nname = \"x\"\njournal = \"wal\"\n");
        assert!(matches!(unknown, Err(ProfileError::Malformed { .. })));
        let bad_mode = Profile::parse_toml("[[profile]]\nname = \"x\"\njournal_mode = \"wall\"\n");
        assert!(matches!(bad_mode, Err(ProfileError::Malformed { .. })));
        let bad_page = Profile::parse_toml("[[profile]]\nname = \"x\"\npage_size = 1000\n");
        assert!(matches!(bad_page, Err(ProfileError::Invalid { .. })));
        let bad_base = Profile::parse_toml("[[profile]]\nname = \"x\"\nbase = \"nope\"\n");
        assert!(matches!(bad_base, Err(ProfileError::Invalid { .. })));
    }

    #[test]
    fn apply_reads_back_the_values_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("a.db")).unwrap();
        let p = Profile::builtin("wal-normal").unwrap();
        p.prepare_new_database(&conn).unwrap();
        let f = p.apply(&conn).unwrap();
        assert_eq!(f.journal_mode, "wal");
        assert_eq!(f.synchronous, "normal");
        assert!(p.fallbacks(&f).is_empty());
    }

    #[test]
    fn a_silent_wal_fallback_is_reported() {
        // An in-memory database cannot be put in WAL mode: SQLite answers "memory".
        let conn = Connection::open_in_memory().unwrap();
        let p = Profile::builtin("wal-full").unwrap();
        let f = p.apply(&conn).unwrap();
        assert_eq!(
            p.fallbacks(&f),
            vec!["journal_mode wal->memory".to_string()]
        );
    }
}
