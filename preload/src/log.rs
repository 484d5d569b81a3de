//! Reading a recorded log back into typed operations.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::{crc32, Dec, Tag};

/// How a sync was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncHow {
    Fsync,
    Fdatasync,
    /// `sync_file_range`: starts write-back, makes nothing durable (no metadata, no cache flush).
    SyncFileRange,
    /// `msync`: flushes a mapping; the recorder does not follow mapped writes, so it makes nothing
    /// durable in the model either.
    Msync,
    /// `sync()` or `syncfs()`: every file and every name becomes durable.
    All,
}

impl SyncHow {
    fn from_byte(b: u8) -> Option<SyncHow> {
        Some(match b {
            0 => SyncHow::Fsync,
            1 => SyncHow::Fdatasync,
            2 => SyncHow::SyncFileRange,
            3 => SyncHow::Msync,
            4 => SyncHow::All,
            _ => return None,
        })
    }
    pub fn to_byte(self) -> u8 {
        match self {
            SyncHow::Fsync => 0,
            SyncHow::Fdatasync => 1,
            SyncHow::SyncFileRange => 2,
            SyncHow::Msync => 3,
            SyncHow::All => 4,
        }
    }
    /// Whether this sync makes a file's data (and size) durable.
    pub fn is_durable(self) -> bool {
        matches!(self, SyncHow::Fsync | SyncHow::Fdatasync | SyncHow::All)
    }
}

/// One logged operation: its place in the trial's total order, who made it, how it ended, what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// Position in the total order, from 1; every record has one.
    pub seq: u64,
    pub pid: u32,
    pub tid: u32,
    /// 0 when the call succeeded, else the errno it returned (a failed call changed nothing).
    pub errno: i32,
    /// The failure was injected by `TORTURE_FAULTFS_FAIL_AT`: the real call was not made.
    pub injected: bool,
    pub kind: OpKind,
}

/// What an operation was. Paths are relative to the trial's folder; `ino` is the file's inode
/// number when the operation ran (files are followed by inode across renames and unlinks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// A process loaded the recorder (at its start or exec, or in a fork child).
    Start {
        ppid: u32,
        /// The order in which the trial's processes started (0, 1, 2, …).
        process_index: u64,
        forked: bool,
        exe: PathBuf,
    },
    Open {
        fd: i32,
        path: PathBuf,
        ino: u64,
        flags: i32,
        /// The open created the file (it did not exist before).
        created: bool,
        is_dir: bool,
        /// `O_TRUNC` cut an existing file to zero.
        truncated: bool,
        old_size: u64,
    },
    Write {
        fd: i32,
        path: PathBuf,
        ino: u64,
        offset: u64,
        old_size: u64,
        /// Where the bytes the call wrote are in the log (only as many as it reported written):
        /// [`Log::data`] reads them.
        data: Data,
    },
    Sync {
        fd: i32,
        path: PathBuf,
        ino: u64,
        how: SyncHow,
        /// An fsync of a directory: makes the names in it durable.
        is_dir: bool,
    },
    Truncate {
        fd: i32,
        path: PathBuf,
        ino: u64,
        old_size: u64,
        new_size: u64,
    },
    Fallocate {
        fd: i32,
        path: PathBuf,
        ino: u64,
        mode: i32,
        offset: u64,
        len: u64,
        old_size: u64,
        new_size: u64,
    },
    Unlink {
        path: PathBuf,
        ino: u64,
        is_dir: bool,
    },
    /// `from`/`to` are `None` when that side is outside the folder (a file moved in or out).
    Rename {
        from: Option<PathBuf>,
        to: Option<PathBuf>,
        ino: u64,
        replaced_ino: Option<u64>,
        flags: u32,
        /// The whole file, when it came in from outside the folder.
        content: Vec<u8>,
    },
    Close {
        fd: i32,
        path: PathBuf,
        ino: u64,
    },
    /// A shared writable mapping of a folder file other than a `-shm`: its writes are not recorded.
    MmapWrite {
        fd: i32,
        path: PathBuf,
        ino: u64,
        offset: u64,
        len: u64,
    },
    /// Bytes the program wrote to its acknowledgement fd (`TORTURE_FAULTFS_ACKFD`).
    Ack {
        fd: i32,
        data: Vec<u8>,
    },
    /// `TORTURE_FAULTFS_CRASH_AT` fired here: the process group was SIGKILLed instead of this op.
    Crash,
    /// A record torn by a SIGKILL (`dropped` bytes) was cut off the log before this one.
    Repair {
        dropped: u64,
    },
    /// Something the recorder saw but cannot follow.
    Unsupported {
        fd: i32,
        path: PathBuf,
        ino: u64,
        what: String,
    },
}

impl OpKind {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Start { .. } => "start",
            OpKind::Open { .. } => "open",
            OpKind::Write { .. } => "write",
            OpKind::Sync { .. } => "sync",
            OpKind::Truncate { .. } => "truncate",
            OpKind::Fallocate { .. } => "fallocate",
            OpKind::Unlink { .. } => "unlink",
            OpKind::Rename { .. } => "rename",
            OpKind::Close { .. } => "close",
            OpKind::MmapWrite { .. } => "mmap-write",
            OpKind::Ack { .. } => "ack",
            OpKind::Crash => "crash",
            OpKind::Repair { .. } => "repair",
            OpKind::Unsupported { .. } => "unsupported",
        }
    }

    /// Operations on the folder's files (not process starts, acks or markers).
    pub fn is_file_op(&self) -> bool {
        matches!(
            self,
            OpKind::Open { .. }
                | OpKind::Write { .. }
                | OpKind::Sync { .. }
                | OpKind::Truncate { .. }
                | OpKind::Fallocate { .. }
                | OpKind::Unlink { .. }
                | OpKind::Rename { .. }
                | OpKind::Close { .. }
        )
    }
}

/// Where a write's bytes are: a range of the log itself, read when a crash state needs them. A
/// parsed log holds no file data, so its memory follows the number of operations, not the bytes
/// they wrote (a server recorded for seconds writes hundreds of megabytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data {
    /// Byte offset in the log.
    pub at: u64,
    pub len: u64,
}

/// The bytes a [`Data`] points into: the log file (kept open) or a log parsed from memory.
#[derive(Debug, Clone, Default)]
enum Source {
    #[default]
    Empty,
    Mem(Arc<Vec<u8>>),
    File(Arc<std::fs::File>),
}

/// A whole log, read back.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub ops: Vec<Op>,
    /// Bytes of a torn last record, dropped.
    pub torn_tail_bytes: u64,
    /// Torn records the recorder cut off in the middle of the run (`Repair` records).
    pub repaired_records: u64,
    source: Source,
}

/// What a log shows about the program, so the lab can tell "nothing seen" from "nothing written".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// No process loaded the recorder: a static binary, Go without cgo, or no `LD_PRELOAD`.
    NoProcessSeen,
    /// The recorder ran but the program touched no file of the folder.
    NoFileOps,
    /// Operations on the folder's files were recorded.
    FileOps,
}

impl Log {
    /// The bytes a write wrote, read from the log. The log was read whole and checksummed when it
    /// was parsed and stays open, so this cannot meet a short file; an I/O error of the disk under
    /// it is the lab's own failure: one line and exit 3.
    pub fn data(&self, d: Data) -> Vec<u8> {
        let mut buf = vec![0u8; d.len as usize];
        let ok = match &self.source {
            Source::Mem(bytes) => match bytes.get(d.at as usize..(d.at + d.len) as usize) {
                Some(b) => {
                    buf.copy_from_slice(b);
                    Ok(())
                }
                None => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            },
            Source::File(f) => {
                use std::os::unix::fs::FileExt as _;
                f.read_exact_at(&mut buf, d.at)
            }
            Source::Empty if d.len == 0 => Ok(()),
            Source::Empty => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
        };
        if let Err(e) = ok {
            eprintln!(
                "torture: the recorder's operation log could not be read again ({e}): the disk under it failed"
            );
            // SAFETY: _exit ends the process at once (a forked slot must not run the parent's
            // exit handlers or flush its copies of the parent's buffers).
            unsafe { libc::_exit(3) };
        }
        buf
    }

    pub fn coverage(&self) -> Coverage {
        if !self
            .ops
            .iter()
            .any(|o| matches!(o.kind, OpKind::Start { .. }))
        {
            Coverage::NoProcessSeen
        } else if self.ops.iter().any(|o| o.kind.is_file_op()) {
            Coverage::FileOps
        } else {
            Coverage::NoFileOps
        }
    }

    /// Processes that loaded the recorder.
    pub fn processes(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| matches!(o.kind, OpKind::Start { .. }))
            .count()
    }

    /// What the recorder saw but could not follow, and settings it could not parse: one message
    /// each, for the lab to report.
    pub fn unsupported(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().filter_map(|o| match &o.kind {
            OpKind::Unsupported { what, .. } => Some(what.as_str()),
            _ => None,
        })
    }

    /// Shared writable mappings of data files: writes the log cannot hold.
    pub fn mmap_writes(&self) -> impl Iterator<Item = &Op> {
        self.ops
            .iter()
            .filter(|o| matches!(o.kind, OpKind::MmapWrite { .. }))
    }
}

/// Why a log could not be read.
#[derive(Debug)]
pub enum LogError {
    Io(std::io::Error),
    Corrupt { offset: u64, reason: String },
}

impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "reading the operation log: {e}"),
            LogError::Corrupt { offset, reason } => {
                write!(f, "operation log damaged at byte {offset}: {reason}")
            }
        }
    }
}

impl std::error::Error for LogError {}

impl From<std::io::Error> for LogError {
    fn from(e: std::io::Error) -> LogError {
        LogError::Io(e)
    }
}

/// Reads the log at `path`. A missing file is an empty log (no process loaded the recorder).
///
/// Read a record at a time, so the parsed operations are the only copy of the log in memory.
pub fn read_log(path: &Path) -> Result<Log, LogError> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Log::default()),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len() as usize;
    let reader = file.try_clone()?;
    let mut log = parse_from(
        std::io::BufReader::with_capacity(1 << 20, reader.take(size as u64)),
        size,
    )?;
    log.source = Source::File(Arc::new(file));
    Ok(log)
}

/// [`parse_log`] over `size` bytes from `r`, a record at a time.
fn parse_from(mut r: impl std::io::Read, size: usize) -> Result<Log, LogError> {
    let mut log = Log::default();
    let mut payload = Vec::new();
    let mut at = 0usize;
    while at < size {
        let mut frame = [0u8; 8];
        if size - at < 8 {
            log.torn_tail_bytes = (size - at) as u64;
            break;
        }
        r.read_exact(&mut frame)?;
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if size - at - 8 < len {
            log.torn_tail_bytes = (size - at) as u64;
            break;
        }
        payload.resize(len, 0);
        r.read_exact(&mut payload)?;
        let is_last = at + 8 + len == size;
        if crc32(&payload) != crc {
            if is_last {
                log.torn_tail_bytes = (size - at) as u64;
                break;
            }
            return Err(corrupt(at, "checksum mismatch"));
        }
        let op = decode(&payload, (at + 8) as u64).map_err(|reason| corrupt(at, reason))?;
        if let OpKind::Repair { .. } = op.kind {
            log.repaired_records += 1;
        }
        log.ops.push(op);
        at += 8 + len;
    }
    Ok(log)
}

/// Parses a whole log. A record cut short or failing its checksum at the very end is a write a
/// SIGKILL interrupted: dropped and counted. Anywhere else it is damage and an error.
pub fn parse_log(bytes: &[u8]) -> Result<Log, LogError> {
    let mut log = parse_from(bytes, bytes.len())?;
    log.source = Source::Mem(Arc::new(bytes.to_vec()));
    Ok(log)
}

fn corrupt(at: usize, reason: &str) -> LogError {
    LogError::Corrupt {
        offset: at as u64,
        reason: reason.to_string(),
    }
}

fn path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// One record's payload, which starts at byte `base` of the log.
fn decode(payload: &[u8], base: u64) -> Result<Op, &'static str> {
    let mut r = Dec { rest: payload };
    let tag = Tag::from_byte(r.u8()?).ok_or("unknown record tag")?;
    let seq = r.u64()?;
    let pid = r.u32()?;
    let tid = r.u32()?;
    let errno = r.i32()?;
    let injected = r.bool()?;
    let kind = match tag {
        Tag::Start => OpKind::Start {
            ppid: r.u32()?,
            process_index: r.u64()?,
            forked: r.bool()?,
            exe: path(r.bytes()?),
        },
        Tag::Open => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::Open {
                fd,
                path: p,
                ino,
                flags: r.i32()?,
                created: r.bool()?,
                is_dir: r.bool()?,
                truncated: r.bool()?,
                old_size: {
                    let old = r.u64()?;
                    r.bytes()?; // reserved (older logs: what O_TRUNC cut)
                    old
                },
            }
        }
        Tag::Write => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::Write {
                fd,
                path: p,
                ino,
                offset: r.u64()?,
                old_size: r.u64()?,
                data: {
                    let len = r.bytes()?.len() as u64;
                    let at = base + (payload.len() - r.rest.len()) as u64 - len;
                    r.bytes()?; // reserved (older logs: the pre-image)
                    Data { at, len }
                },
            }
        }
        Tag::Sync => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::Sync {
                fd,
                path: p,
                ino,
                how: SyncHow::from_byte(r.u8()?).ok_or("unknown sync kind")?,
                is_dir: r.bool()?,
            }
        }
        Tag::Truncate => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::Truncate {
                fd,
                path: p,
                ino,
                old_size: r.u64()?,
                new_size: {
                    let new = r.u64()?;
                    r.bytes()?; // reserved (older logs: the cut tail)
                    new
                },
            }
        }
        Tag::Fallocate => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::Fallocate {
                fd,
                path: p,
                ino,
                mode: r.i32()?,
                offset: r.u64()?,
                len: r.u64()?,
                old_size: r.u64()?,
                new_size: {
                    let new = r.u64()?;
                    r.bytes()?; // reserved (older logs: the zeroed range's pre-image)
                    new
                },
            }
        }
        Tag::Unlink => OpKind::Unlink {
            path: path(r.bytes()?),
            ino: r.u64()?,
            is_dir: r.bool()?,
        },
        Tag::Rename => {
            let from = path(r.bytes()?);
            let from_inside = r.bool()?;
            let to = path(r.bytes()?);
            let to_inside = r.bool()?;
            let ino = r.u64()?;
            let replaced = r.u64()?;
            OpKind::Rename {
                from: from_inside.then_some(from),
                to: to_inside.then_some(to),
                ino,
                replaced_ino: (replaced != 0).then_some(replaced),
                flags: r.u32()?,
                content: r.bytes()?.to_vec(),
            }
        }
        Tag::Close => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::Close { fd, path: p, ino }
        }
        Tag::MmapWrite => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::MmapWrite {
                fd,
                path: p,
                ino,
                offset: r.u64()?,
                len: r.u64()?,
            }
        }
        Tag::Ack => OpKind::Ack {
            fd: r.i32()?,
            data: r.bytes()?.to_vec(),
        },
        Tag::Crash => OpKind::Crash,
        Tag::Repair => OpKind::Repair { dropped: r.u64()? },
        Tag::Unsupported => {
            let (fd, p, ino) = file(&mut r)?;
            OpKind::Unsupported {
                fd,
                path: p,
                ino,
                what: String::from_utf8_lossy(r.bytes()?).into_owned(),
            }
        }
    };
    if !r.rest.is_empty() {
        return Err("trailing bytes in record");
    }
    Ok(Op {
        seq,
        pid,
        tid,
        errno,
        injected,
        kind,
    })
}

fn file(r: &mut Dec<'_>) -> Result<(i32, PathBuf, u64), &'static str> {
    Ok((r.i32()?, path(r.bytes()?), r.u64()?))
}
