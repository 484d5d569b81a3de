//! A SQLite VFS over files held in memory: a crash state's files checked by the lab's SQLite
//! without writing them to a folder and reading them back (issue 22: writing a state to tmpfs,
//! unlinking the previous one and SQLite's `pread`s of it were half of an exec power-loss check).
//!
//! What SQLite does with the files is its own code, as on disk: the pager, the hot-journal
//! rollback, the WAL recovery. Only the bottom layer differs, and it mirrors the unix VFS where
//! SQLite can tell: a file "exists" for `xAccess` only when it is not empty (`unixAccess`), a
//! short read fills zeros and says so, 4096-byte sectors, power-safe overwrite. There is no
//! shared memory, so a WAL database is opened in `locking_mode=EXCLUSIVE` (set before the first
//! read: SQLite then keeps the WAL index in its heap and runs the same recovery, `walIndexRecover`,
//! as it would to rebuild a deleted `-shm`; crash states never hold a `-shm`). The check only
//! reads; whatever SQLite writes (a rolled-back journal) changes the memory copy, never the state.
//!
//! `TORTURE_EFFECTIVE_DEDUPE=compare` checks every state both ways (this VFS, and its files
//! written to disk and opened one by one) and makes any difference a lab error.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use rusqlite::{ffi, Connection, OpenFlags};

const VFS_NAME: &CStr = c"torture-memory";

/// Where the folders' made-up paths start.
const ROOT: &str = "/torture-memory-vfs/";

/// A file's bytes, shared by every handle SQLite opens on it.
type Content = Arc<Mutex<Vec<u8>>>;

/// Every file the VFS serves, by the made-up absolute path SQLite knows it by.
fn files() -> MutexGuard<'static, HashMap<String, Content>> {
    static FILES: OnceLock<Mutex<HashMap<String, Content>>> = OnceLock::new();
    FILES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn bytes(content: &Content) -> MutexGuard<'_, Vec<u8>> {
    content.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A folder of files in memory, under a path no disk folder has. Its files go when it is dropped
/// (drop its connections first).
pub struct MemoryFolder {
    root: String,
}

impl MemoryFolder {
    /// Holds `files` (paths relative to the folder, as a crash state names them).
    pub fn new(state: BTreeMap<PathBuf, Vec<u8>>) -> Result<MemoryFolder, String> {
        register()?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = format!(
            "{ROOT}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let folder = MemoryFolder { root };
        let mut all = files();
        for (rel, data) in state {
            // SQLite asks only for the database's own names (`-wal`, `-journal`, a super-journal
            // it names itself); a program's scratch file with a name that is not UTF-8 is left out.
            if let Ok(path) = folder.path_of(&rel) {
                all.insert(path, Arc::new(Mutex::new(data)));
            }
        }
        Ok(folder)
    }

    fn path_of(&self, rel: &Path) -> Result<String, String> {
        let rel = rel
            .to_str()
            .ok_or_else(|| format!("a crash state's file name is not UTF-8: {}", rel.display()))?;
        Ok(format!("{}/{rel}", self.root))
    }

    /// Whether the folder holds `rel` (empty or not, as `Path::exists` would say on disk).
    pub fn contains(&self, rel: &Path) -> bool {
        self.path_of(rel).is_ok_and(|p| files().contains_key(&p))
    }

    /// Opens `rel` with the lab's SQLite through this VFS.
    pub fn open(&self, rel: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
        let path = self
            .path_of(rel)
            .map_err(|e| rusqlite::Error::InvalidPath(PathBuf::from(e)))?;
        Connection::open_with_flags_and_vfs(path, flags, VFS_NAME)
    }
}

impl Drop for MemoryFolder {
    fn drop(&mut self) {
        let prefix = format!("{}/", self.root);
        files().retain(|path, _| !path.starts_with(&prefix));
    }
}

fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: called once; the vfs handed to SQLite is leaked and lives forever.
            unsafe { register_once() }
        })
        .clone()
}

unsafe fn register_once() -> Result<(), String> {
    // Time, randomness, sleep and dynamic loading are the default VFS's (the unix VFS's functions
    // ignore the vfs pointer they are given).
    let real = ffi::sqlite3_vfs_find(ptr::null());
    if real.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    let vfs = Box::new(ffi::sqlite3_vfs {
        iVersion: 2,
        szOsFile: c_int::try_from(std::mem::size_of::<MemFile>()).map_err(|e| e.to_string())?,
        mxPathname: 512,
        pNext: ptr::null_mut(),
        zName: VFS_NAME.as_ptr(),
        pAppData: ptr::null_mut(),
        xOpen: Some(v_open),
        xDelete: Some(v_delete),
        xAccess: Some(v_access),
        xFullPathname: Some(v_full_pathname),
        xDlOpen: (*real).xDlOpen,
        xDlError: (*real).xDlError,
        xDlSym: (*real).xDlSym,
        xDlClose: (*real).xDlClose,
        xRandomness: (*real).xRandomness,
        xSleep: (*real).xSleep,
        xCurrentTime: (*real).xCurrentTime,
        xGetLastError: (*real).xGetLastError,
        xCurrentTimeInt64: (*real).xCurrentTimeInt64,
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    });
    let vfs = Box::into_raw(vfs);
    let rc = ffi::sqlite3_vfs_register(vfs, 0);
    if rc != ffi::SQLITE_OK {
        drop(Box::from_raw(vfs));
        return Err(format!("sqlite3_vfs_register failed with code {rc}"));
    }
    Ok(())
}

/// What SQLite allocates for an open file (`szOsFile`): its header, then the file's bytes.
#[repr(C)]
struct MemFile {
    base: ffi::sqlite3_file,
    /// From `Arc::into_raw`; given back in `x_close`.
    content: *const Mutex<Vec<u8>>,
}

/// Version 1: no shared memory, no mmap.
static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe fn name_of(name: *const c_char) -> Option<String> {
    if name.is_null() {
        return None;
    }
    Some(CStr::from_ptr(name).to_string_lossy().into_owned())
}

// SAFETY (the methods below): SQLite calls them with pointers it owns and sizes it gave; a file
// pointer is one `v_open` initialised (non-null pMethods), so its `content` is a live Arc.

unsafe extern "C" fn v_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    (*file).pMethods = ptr::null();
    let content: Content = match name_of(name) {
        // A temporary file, or one deleted on close: nobody else opens it.
        None => Arc::default(),
        Some(_) if flags & ffi::SQLITE_OPEN_DELETEONCLOSE != 0 => Arc::default(),
        Some(path) => {
            let mut all = files();
            match all.get(&path) {
                Some(c) => Arc::clone(c),
                None if flags & ffi::SQLITE_OPEN_CREATE != 0 => {
                    let c: Content = Arc::default();
                    all.insert(path, Arc::clone(&c));
                    c
                }
                None => return ffi::SQLITE_CANTOPEN,
            }
        }
    };
    ptr::write(
        file.cast::<MemFile>(),
        MemFile {
            base: ffi::sqlite3_file {
                pMethods: &IO_METHODS,
            },
            content: Arc::into_raw(content),
        },
    );
    if !out_flags.is_null() {
        *out_flags = flags;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn v_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    _sync_dir: c_int,
) -> c_int {
    match name_of(name) {
        Some(path) if files().remove(&path).is_some() => ffi::SQLITE_OK,
        _ => ffi::SQLITE_IOERR_DELETE_NOENT,
    }
}

unsafe extern "C" fn v_access(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    let found = name_of(name).and_then(|p| files().get(&p).cloned());
    // As unixAccess: "exists" is a file that is not empty.
    *out = c_int::from(match (found, flags) {
        (Some(c), ffi::SQLITE_ACCESS_EXISTS) => !bytes(&c).is_empty(),
        (found, _) => found.is_some(),
    });
    ffi::SQLITE_OK
}

unsafe extern "C" fn v_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    let name = CStr::from_ptr(name).to_bytes_with_nul();
    // Only the folders' own files: a relative name (an ATTACH in the user's SQL) would live
    // outside every folder and outlast it.
    if !name.starts_with(ROOT.as_bytes()) {
        return ffi::SQLITE_CANTOPEN;
    }
    if name.len() > usize::try_from(n_out).unwrap_or(0) {
        return ffi::SQLITE_CANTOPEN;
    }
    ptr::copy_nonoverlapping(name.as_ptr().cast::<c_char>(), out, name.len());
    ffi::SQLITE_OK
}

unsafe fn content<'a>(file: *mut ffi::sqlite3_file) -> &'a Mutex<Vec<u8>> {
    &*(*file.cast::<MemFile>()).content
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    let f = file.cast::<MemFile>();
    drop(Arc::from_raw((*f).content));
    (*f).base.pMethods = ptr::null();
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let data = content(file).lock().unwrap_or_else(PoisonError::into_inner);
    let (Ok(amount), Ok(offset)) = (usize::try_from(amount), usize::try_from(offset)) else {
        return ffi::SQLITE_IOERR_READ;
    };
    let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), amount);
    let have = data.len().saturating_sub(offset).min(amount);
    if have > 0 {
        out[..have].copy_from_slice(&data[offset..offset + have]);
    }
    if have < amount {
        out[have..].fill(0);
        return ffi::SQLITE_IOERR_SHORT_READ;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let mut data = content(file).lock().unwrap_or_else(PoisonError::into_inner);
    let (Ok(amount), Ok(offset)) = (usize::try_from(amount), usize::try_from(offset)) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let end = offset + amount;
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset..end].copy_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), amount));
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let Ok(size) = usize::try_from(size) else {
        return ffi::SQLITE_IOERR_TRUNCATE;
    };
    content(file)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .resize(size, 0);
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    let len = content(file)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    *out = ffi::sqlite3_int64::try_from(len).unwrap_or(ffi::sqlite3_int64::MAX);
    ffi::SQLITE_OK
}

// One connection at a time reads a folder: locks always succeed.
unsafe extern "C" fn x_lock(_file: *mut ffi::sqlite3_file, _level: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_unlock(_file: *mut ffi::sqlite3_file, _level: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(
    _file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    *out = 0;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_control(
    _file: *mut ffi::sqlite3_file,
    _op: c_int,
    _arg: *mut c_void,
) -> c_int {
    ffi::SQLITE_NOTFOUND
}

/// As the unix VFS on Linux (`SQLITE_DEFAULT_SECTOR_SIZE`).
unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    4096
}

/// `SQLITE_IOCAP_SUBPAGE_READ` (SQLite 3.48+; older ones ignore the bit). Not in every binding.
const IOCAP_SUBPAGE_READ: c_int = 0x0000_8000;

/// As the unix VFS on Linux: power-safe overwrite (its default `psow=1`) and sub-page reads, with
/// which SQLite reads overflow pages straight from the file (a short read there is an I/O error,
/// not zeros through the pager, as on disk).
unsafe extern "C" fn x_device_characteristics(_file: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE | IOCAP_SUBPAGE_READ
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_database(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let db = dir.join("t.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);",
        )
        .unwrap();
        let _ = conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
        // The rows are only in the -wal: reading them back needs WAL recovery.
        let mut state = BTreeMap::new();
        for name in ["t.db", "t.db-wal"] {
            state.insert(PathBuf::from(name), std::fs::read(dir.join(name)).unwrap());
        }
        drop(conn);
        state
    }

    #[test]
    fn a_wal_state_in_memory_recovers_its_commits() {
        let dir = tempfile::tempdir().unwrap();
        let state = wal_database(dir.path());
        assert!(state[Path::new("t.db-wal")].len() > 32, "rows in the WAL");
        let folder = MemoryFolder::new(state).unwrap();
        assert!(folder.contains(Path::new("t.db")));
        assert!(!folder.contains(Path::new("other.db")));
        let conn = folder
            .open(Path::new("t.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE").unwrap();
        let n: i64 = conn
            .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 6);
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    fn a_hot_journal_is_rolled_back_in_memory() {
        // A transaction that spilled pages into the database before its COMMIT, cut there: the
        // database file holds half of it, the -journal the pages it overwrote.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=DELETE; PRAGMA cache_size=1; CREATE TABLE t(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT randomblob(100) FROM n;
             BEGIN; UPDATE t SET x = zeroblob(100);",
        )
        .unwrap();
        let mut state = BTreeMap::new();
        for name in ["t.db", "t.db-journal"] {
            state.insert(
                PathBuf::from(name),
                std::fs::read(dir.path().join(name)).unwrap(),
            );
        }
        assert!(
            state[Path::new("t.db-journal")].len() > 512,
            "a hot journal"
        );
        let folder = MemoryFolder::new(state).unwrap();
        let mem = folder
            .open(Path::new("t.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        let zeroed: i64 = mem
            .query_row("SELECT count(*) FROM t WHERE x = zeroblob(100)", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(zeroed, 0, "the uncommitted UPDATE rolled back");
        let rows: i64 = mem
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2000);
        // The journal was deleted by the rollback, in memory only.
        assert!(!folder.contains(Path::new("t.db-journal")));
        assert!(dir.path().join("t.db-journal").exists());
        drop(conn);
    }

    #[test]
    fn a_torn_overflow_page_fails_to_read_in_memory_as_on_disk() {
        // A large row's overflow chain ends in the file's last page; half of that page is lost
        // (a torn tail with no journal). On disk SQLite reads overflow pages straight from the
        // file and the short read is an I/O error; in memory it must be the same, not zeros.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=OFF; CREATE TABLE t(b); INSERT INTO t VALUES (randomblob(20000));",
        )
        .unwrap();
        drop(conn);
        let mut data = std::fs::read(&db).unwrap();
        data.truncate(data.len() - 2048);
        std::fs::write(&db, &data).unwrap();
        let read = |conn: &Connection| {
            conn.query_row("SELECT hex(b) FROM t", [], |r| r.get::<_, String>(0))
                .map(|h| h.len())
        };
        let on_disk = read(&Connection::open(&db).unwrap());
        let folder = MemoryFolder::new(BTreeMap::from([(PathBuf::from("t.db"), data)])).unwrap();
        let mem = folder
            .open(Path::new("t.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        let in_memory = read(&mem);
        assert!(on_disk.is_err(), "on disk: {on_disk:?}");
        assert_eq!(
            on_disk.map_err(|e| e.to_string()),
            in_memory.map_err(|e| e.to_string())
        );
    }

    #[test]
    fn a_relative_name_is_refused() {
        let folder = MemoryFolder::new(BTreeMap::new()).unwrap();
        let conn = Connection::open_with_flags_and_vfs(
            "relative.db",
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            VFS_NAME,
        );
        assert!(conn.is_err());
        assert!(!files().contains_key("relative.db"));
        drop(folder);
    }

    #[test]
    fn a_torn_wal_frame_is_not_recovered_and_a_missing_database_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = wal_database(dir.path());
        // Tear the last frame's page: its checksum fails, recovery stops before that commit.
        let wal = state.get_mut(Path::new("t.db-wal")).unwrap();
        let n = wal.len();
        wal[n - 10] ^= 0xff;
        let folder = MemoryFolder::new(state).unwrap();
        let conn = folder
            .open(Path::new("t.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap();
        conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE").unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            rows, 0,
            "the INSERT's commit frame was torn: the table without its rows"
        );
        assert!(folder
            .open(Path::new("missing.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)
            .is_err());
        let root = format!("{}/", folder.root);
        drop(conn);
        drop(folder);
        assert!(!files().keys().any(|k| k.starts_with(&root)), "dropped");
    }
}
