//! The operation log: one record per counted operation, appended by the shim *before* the operation
//! is performed, with what is needed to undo it (pre-images, old sizes, deleted contents). The slot
//! reads it after the writer is dead to reconstruct what a power cut could have left on disk.
//!
//! Format: a sequence of records, each `[len: u32 LE][crc32 of payload: u32 LE][payload]`. Every
//! record is one `write(2)` on an `O_APPEND` descriptor, so records of several threads or processes
//! never interleave and a record survives the writer's SIGKILL (the page cache outlives the
//! process). Only a record cut short at the very end of the file is possible; the reader ignores it.
//!
//! Payload: `tag u8, op u64, pid u32, file-kind u8, path (u32 length + bytes)`, then per tag:
//! open `existed u8`; write `offset u64, len u32, old_size u64, pre-image`; truncate `new_size u64,
//! old_size u64, cut tail`; sync `flags i32, dir_sync u8`; delete `sync_dir u8, existed u8,
//! content` (byte strings as u32 length + bytes).

use std::ffi::OsStr;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::config::{FileKind, OpKind};

/// One logged operation, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The writer process's op index (1, 2, 3, … per process, over all counted operations).
    pub op: u64,
    pub pid: u32,
    pub file: FileKind,
    /// The file's path as SQLite named it (absolute).
    pub path: PathBuf,
    pub event: LogEvent,
}

/// What the operation was, and how to undo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// `xOpen` with `SQLITE_OPEN_CREATE`; `existed` says whether it found the file already there.
    Open { existed: bool },
    /// `xWrite` of `len` bytes at `offset`. `pre_image` is what the range held before (shorter than
    /// `len` when the write reaches past the old end of file, `old_size`).
    Write {
        offset: u64,
        len: u32,
        old_size: u64,
        pre_image: Vec<u8>,
    },
    /// `xTruncate` from `old_size` to `new_size`; `cut_tail` is what `[new_size, old_size)` held.
    Truncate {
        new_size: u64,
        old_size: u64,
        cut_tail: Vec<u8>,
    },
    /// `xSync` with SQLite's sync `flags`. `dir_sync`: the unix VFS also fsyncs the directory during
    /// this call (first sync of a journal, WAL or super-journal opened with CREATE).
    Sync { flags: i32, dir_sync: bool },
    /// `xDelete`; `content` is the whole file before the unlink (`None`: there was no file).
    Delete {
        sync_dir: bool,
        content: Option<Vec<u8>>,
    },
}

impl LogRecord {
    pub fn op_kind(&self) -> OpKind {
        match self.event {
            LogEvent::Open { .. } => OpKind::Open,
            LogEvent::Write { .. } => OpKind::Write,
            LogEvent::Truncate { .. } => OpKind::Truncate,
            LogEvent::Sync { .. } => OpKind::Sync,
            LogEvent::Delete { .. } => OpKind::Delete,
        }
    }
}

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("reading the operation log: {0}")]
    Io(#[from] std::io::Error),
    #[error("operation log damaged at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
}

/// Reads every complete record of the log at `path`, ignoring a torn last record.
pub fn read_log(path: &Path) -> Result<Vec<LogRecord>, LogError> {
    parse_log(&std::fs::read(path)?)
}

/// Parses a whole log. A record cut short or failing its checksum at the very end of the log is a
/// write the SIGKILL interrupted and is ignored; anywhere else it is damage and an error.
pub fn parse_log(bytes: &[u8]) -> Result<Vec<LogRecord>, LogError> {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(frame) = bytes.get(at..at + 8) else {
            break; // torn header at the end
        };
        let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(frame[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break; // torn payload at the end
        };
        let is_last = at + 8 + len == bytes.len();
        if crc32(payload) != crc {
            if is_last {
                break;
            }
            return Err(corrupt(at, "checksum mismatch"));
        }
        let record = decode(payload).map_err(|reason| corrupt(at, reason))?;
        records.push(record);
        at += 8 + len;
    }
    Ok(records)
}

fn corrupt(at: usize, reason: &str) -> LogError {
    LogError::Corrupt {
        offset: at as u64,
        reason: reason.to_string(),
    }
}

/// The fixed part of a record, borrowed from the shim's state.
pub(crate) struct RecordHead<'a> {
    pub op: u64,
    pub pid: u32,
    pub file: FileKind,
    pub path: &'a [u8],
}

/// A [`LogEvent`] with borrowed bytes, so the shim logs without allocating.
pub(crate) enum EventRef<'a> {
    Open {
        existed: bool,
    },
    Write {
        offset: u64,
        len: u32,
        old_size: u64,
        pre_image: &'a [u8],
    },
    Truncate {
        new_size: u64,
        old_size: u64,
        cut_tail: &'a [u8],
    },
    Sync {
        flags: i32,
        dir_sync: bool,
    },
    Delete {
        sync_dir: bool,
        content: Option<&'a [u8]>,
    },
}

#[cfg(test)]
impl LogEvent {
    pub(crate) fn as_event_ref(&self) -> EventRef<'_> {
        match self {
            LogEvent::Open { existed } => EventRef::Open { existed: *existed },
            LogEvent::Write {
                offset,
                len,
                old_size,
                pre_image,
            } => EventRef::Write {
                offset: *offset,
                len: *len,
                old_size: *old_size,
                pre_image,
            },
            LogEvent::Truncate {
                new_size,
                old_size,
                cut_tail,
            } => EventRef::Truncate {
                new_size: *new_size,
                old_size: *old_size,
                cut_tail,
            },
            LogEvent::Sync { flags, dir_sync } => EventRef::Sync {
                flags: *flags,
                dir_sync: *dir_sync,
            },
            LogEvent::Delete { sync_dir, content } => EventRef::Delete {
                sync_dir: *sync_dir,
                content: content.as_deref(),
            },
        }
    }
}

/// Replaces `buf` with the framed record (length, checksum, payload), ready for one `write(2)`.
pub(crate) fn encode(buf: &mut Vec<u8>, head: &RecordHead<'_>, event: &EventRef<'_>) {
    buf.clear();
    buf.extend_from_slice(&[0; 8]); // frame, filled in below
    let tag = match event {
        EventRef::Open { .. } => 1u8,
        EventRef::Write { .. } => 2,
        EventRef::Truncate { .. } => 3,
        EventRef::Sync { .. } => 4,
        EventRef::Delete { .. } => 5,
    };
    buf.push(tag);
    buf.extend_from_slice(&head.op.to_le_bytes());
    buf.extend_from_slice(&head.pid.to_le_bytes());
    buf.push(head.file.to_byte());
    put_bytes(buf, head.path);
    match *event {
        EventRef::Open { existed } => buf.push(u8::from(existed)),
        EventRef::Write {
            offset,
            len,
            old_size,
            pre_image,
        } => {
            buf.extend_from_slice(&offset.to_le_bytes());
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&old_size.to_le_bytes());
            put_bytes(buf, pre_image);
        }
        EventRef::Truncate {
            new_size,
            old_size,
            cut_tail,
        } => {
            buf.extend_from_slice(&new_size.to_le_bytes());
            buf.extend_from_slice(&old_size.to_le_bytes());
            put_bytes(buf, cut_tail);
        }
        EventRef::Sync { flags, dir_sync } => {
            buf.extend_from_slice(&flags.to_le_bytes());
            buf.push(u8::from(dir_sync));
        }
        EventRef::Delete { sync_dir, content } => {
            buf.push(u8::from(sync_dir));
            buf.push(u8::from(content.is_some()));
            put_bytes(buf, content.unwrap_or_default());
        }
    }
    let payload_len = (buf.len() - 8) as u32;
    let crc = crc32(&buf[8..]);
    buf[..4].copy_from_slice(&payload_len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one framed record with a single `write(2)` (retried only if the kernel wrote less,
/// which on a regular file means the disk is full).
pub(crate) fn append(fd: RawFd, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice for its length; `fd` is open for the duration
        // (the shim holds its state lock, which owns the descriptor).
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// A cursor over one payload.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.rest.len() < n {
            return Err("record shorter than its fields");
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn bool(&mut self) -> Result<bool, &'static str> {
        Ok(self.u8()? != 0)
    }
    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn decode(payload: &[u8]) -> Result<LogRecord, &'static str> {
    let mut r = Reader { rest: payload };
    let tag = r.u8()?;
    let op = r.u64()?;
    let pid = r.u32()?;
    let file = FileKind::from_byte(r.u8()?).ok_or("unknown file kind")?;
    let path = PathBuf::from(OsStr::from_bytes(r.bytes()?));
    let event = match tag {
        1 => LogEvent::Open { existed: r.bool()? },
        2 => LogEvent::Write {
            offset: r.u64()?,
            len: r.u32()?,
            old_size: r.u64()?,
            pre_image: r.bytes()?.to_vec(),
        },
        3 => LogEvent::Truncate {
            new_size: r.u64()?,
            old_size: r.u64()?,
            cut_tail: r.bytes()?.to_vec(),
        },
        4 => LogEvent::Sync {
            flags: r.i32()?,
            dir_sync: r.bool()?,
        },
        5 => {
            let sync_dir = r.bool()?;
            let existed = r.bool()?;
            let content = r.bytes()?;
            LogEvent::Delete {
                sync_dir,
                content: existed.then(|| content.to_vec()),
            }
        }
        _ => return Err("unknown record tag"),
    };
    if !r.rest.is_empty() {
        return Err("trailing bytes in record");
    }
    Ok(LogRecord {
        op,
        pid,
        file,
        path,
        event,
    })
}

/// CRC-32 (IEEE 802.3, as in zlib): enough to tell a torn record from a whole one.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<LogRecord> {
        let rec = |op, file, path: &str, event| LogRecord {
            op,
            pid: 42,
            file,
            path: PathBuf::from(path),
            event,
        };
        vec![
            rec(
                1,
                FileKind::Wal,
                "/d/x.db-wal",
                LogEvent::Open { existed: false },
            ),
            rec(
                2,
                FileKind::Wal,
                "/d/x.db-wal",
                LogEvent::Write {
                    offset: 0,
                    len: 32,
                    old_size: 0,
                    pre_image: vec![],
                },
            ),
            rec(
                3,
                FileKind::MainDb,
                "/d/x.db",
                LogEvent::Truncate {
                    new_size: 4096,
                    old_size: 4100,
                    cut_tail: vec![1, 2, 3, 4],
                },
            ),
            rec(
                4,
                FileKind::Wal,
                "/d/x.db-wal",
                LogEvent::Sync {
                    flags: 3,
                    dir_sync: true,
                },
            ),
            rec(
                5,
                FileKind::MainJournal,
                "/d/x.db-journal",
                LogEvent::Delete {
                    sync_dir: false,
                    content: Some(vec![9; 600]),
                },
            ),
            rec(
                6,
                FileKind::MainJournal,
                "/d/x.db-journal",
                LogEvent::Delete {
                    sync_dir: true,
                    content: None,
                },
            ),
        ]
    }

    fn encode_all(records: &[LogRecord]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for r in records {
            let path = r.path.as_os_str().as_bytes();
            let head = RecordHead {
                op: r.op,
                pid: r.pid,
                file: r.file,
                path,
            };
            encode(&mut buf, &head, &r.event.as_event_ref());
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let records = sample();
        assert_eq!(parse_log(&encode_all(&records)).unwrap(), records);
    }

    #[test]
    fn a_torn_last_record_is_ignored_wherever_it_was_cut() {
        let records = sample();
        let bytes = encode_all(&records);
        let whole_but_last = encode_all(&records[..records.len() - 1]).len();
        for cut in whole_but_last..bytes.len() {
            let parsed = parse_log(&bytes[..cut]).unwrap();
            assert_eq!(parsed, records[..records.len() - 1], "cut at {cut}");
        }
        // A last record whose bytes were garbled (rather than cut) is also a torn tail.
        let mut garbled = bytes.clone();
        *garbled.last_mut().unwrap() ^= 0xff;
        assert_eq!(parse_log(&garbled).unwrap().len(), records.len() - 1);
    }

    #[test]
    fn damage_before_the_last_record_is_an_error() {
        let mut bytes = encode_all(&sample());
        bytes[20] ^= 0x40;
        assert!(matches!(
            parse_log(&bytes),
            Err(LogError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
