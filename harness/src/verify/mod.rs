//! After the trial's processes are gone: reopen and recover the database (oracle), classify SQLite's
//! errors, and judge the outcome against what SQLite documents (verdict); the row types they fill
//! (outcome); the in-memory VFS a crash state's files are checked through (memory_vfs).

pub mod memory_vfs;
pub mod oracle;
pub mod outcome;
pub mod sqlite_error;
pub mod verdict;
