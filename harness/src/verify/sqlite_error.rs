//! Classifying SQLite failures by result code, never by message text.

use rusqlite::ffi;

/// `SQLITE_BUSY`, `SQLITE_CORRUPT`, … for an error; `RUST_<kind>` for errors rusqlite raised itself.
pub fn code_name(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => primary_name(err.extended_code).to_string(),
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => "RUST_TYPE".into(),
        rusqlite::Error::QueryReturnedNoRows => "RUST_NO_ROWS".into(),
        _ => "RUST_OTHER".into(),
    }
}

fn primary_code(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => Some(err.extended_code & 0xff),
        _ => None,
    }
}

/// The transaction failed for lock contention; an application would retry it.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        primary_code(e),
        Some(ffi::SQLITE_BUSY) | Some(ffi::SQLITE_LOCKED)
    )
}

/// The error says the database file is damaged.
pub fn is_corrupt(e: &rusqlite::Error) -> bool {
    primary_code(e) == Some(ffi::SQLITE_CORRUPT)
}

/// SQLITE_NOTADB: not a database, or (SQLCipher) a key that does not authenticate page 1.
pub fn is_notadb(e: &rusqlite::Error) -> bool {
    primary_code(e) == Some(ffi::SQLITE_NOTADB)
}

/// One line for the CSV's `detail`: code name and SQLite's message.
pub fn describe(e: &rusqlite::Error) -> String {
    format!("{}: {}", code_name(e), e)
}

/// The primary result code of an error (0..31); rusqlite's own errors count as SQLITE_ERROR.
pub fn primary(e: &rusqlite::Error) -> usize {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => (err.extended_code & 0x1f) as usize,
        _ => 1,
    }
}

pub fn primary_name(code: i32) -> &'static str {
    match code & 0xff {
        ffi::SQLITE_OK => "SQLITE_OK",
        ffi::SQLITE_ERROR => "SQLITE_ERROR",
        ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
        ffi::SQLITE_PERM => "SQLITE_PERM",
        ffi::SQLITE_ABORT => "SQLITE_ABORT",
        ffi::SQLITE_BUSY => "SQLITE_BUSY",
        ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
        ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
        ffi::SQLITE_READONLY => "SQLITE_READONLY",
        ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        ffi::SQLITE_IOERR => "SQLITE_IOERR",
        ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
        ffi::SQLITE_NOTFOUND => "SQLITE_NOTFOUND",
        ffi::SQLITE_FULL => "SQLITE_FULL",
        ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
        ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
        ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
        ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
        ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
        ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
        ffi::SQLITE_NOLFS => "SQLITE_NOLFS",
        ffi::SQLITE_AUTH => "SQLITE_AUTH",
        ffi::SQLITE_RANGE => "SQLITE_RANGE",
        ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
        _ => "SQLITE_OTHER",
    }
}

/// The extended result code's name where it tells more than the primary one (`SQLITE_BUSY_RECOVERY`,
/// `SQLITE_IOERR_SHMSIZE`), else the primary name; `RUST_*` for errors rusqlite raised itself.
pub fn extended_name(e: &rusqlite::Error) -> String {
    use rusqlite::ffi;
    let rusqlite::Error::SqliteFailure(err, _) = e else {
        return code_name(e);
    };
    let name = match err.extended_code {
        ffi::SQLITE_BUSY_RECOVERY => "SQLITE_BUSY_RECOVERY",
        ffi::SQLITE_BUSY_SNAPSHOT => "SQLITE_BUSY_SNAPSHOT",
        ffi::SQLITE_BUSY_TIMEOUT => "SQLITE_BUSY_TIMEOUT",
        ffi::SQLITE_LOCKED_SHAREDCACHE => "SQLITE_LOCKED_SHAREDCACHE",
        ffi::SQLITE_IOERR_READ => "SQLITE_IOERR_READ",
        ffi::SQLITE_IOERR_SHORT_READ => "SQLITE_IOERR_SHORT_READ",
        ffi::SQLITE_IOERR_WRITE => "SQLITE_IOERR_WRITE",
        ffi::SQLITE_IOERR_FSYNC => "SQLITE_IOERR_FSYNC",
        ffi::SQLITE_IOERR_TRUNCATE => "SQLITE_IOERR_TRUNCATE",
        ffi::SQLITE_IOERR_FSTAT => "SQLITE_IOERR_FSTAT",
        ffi::SQLITE_IOERR_LOCK => "SQLITE_IOERR_LOCK",
        ffi::SQLITE_IOERR_UNLOCK => "SQLITE_IOERR_UNLOCK",
        ffi::SQLITE_IOERR_DELETE => "SQLITE_IOERR_DELETE",
        ffi::SQLITE_IOERR_SHMOPEN => "SQLITE_IOERR_SHMOPEN",
        ffi::SQLITE_IOERR_SHMSIZE => "SQLITE_IOERR_SHMSIZE",
        ffi::SQLITE_IOERR_SHMLOCK => "SQLITE_IOERR_SHMLOCK",
        ffi::SQLITE_IOERR_SHMMAP => "SQLITE_IOERR_SHMMAP",
        ffi::SQLITE_IOERR_RDLOCK => "SQLITE_IOERR_RDLOCK",
        ffi::SQLITE_IOERR_DELETE_NOENT => "SQLITE_IOERR_DELETE_NOENT",
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK => "SQLITE_IOERR_CHECKRESERVEDLOCK",
        ffi::SQLITE_IOERR_ACCESS => "SQLITE_IOERR_ACCESS",
        ffi::SQLITE_IOERR_CLOSE => "SQLITE_IOERR_CLOSE",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CORRUPT_VTAB => "SQLITE_CORRUPT_VTAB",
        ffi::SQLITE_READONLY_RECOVERY => "SQLITE_READONLY_RECOVERY",
        ffi::SQLITE_READONLY_DBMOVED => "SQLITE_READONLY_DBMOVED",
        ffi::SQLITE_CANTOPEN_NOTEMPDIR => "SQLITE_CANTOPEN_NOTEMPDIR",
        _ => {
            let p = primary_name(err.extended_code);
            return if err.extended_code > 0xff {
                format!("{p}({})", err.extended_code)
            } else {
                p.to_string()
            };
        }
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_by_code() {
        let e = rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_BUSY_SNAPSHOT),
            Some("whatever the text".into()),
        );
        assert_eq!(code_name(&e), "SQLITE_BUSY");
        assert!(is_busy(&e));
        let e = rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_CORRUPT_VTAB), None);
        assert!(is_corrupt(&e));
        assert_eq!(
            code_name(&rusqlite::Error::QueryReturnedNoRows),
            "RUST_NO_ROWS"
        );
    }
}
