//! The log's byte format, shared by the recorder (which encodes) and the reader (which decodes).
//!
//! A log is a sequence of records, each `[len: u32 LE][crc32 of payload: u32 LE][payload]`, appended
//! with one `write(2)` on an `O_APPEND` descriptor while the appender holds the trial's lock, so the
//! order of records in the file is the one total order of every process and thread of the trial.
//!
//! Payload: `tag u8, seq u64, pid u32, tid u32, errno i32, injected u8`, then the fields of the tag
//! (see [`Tag`]); byte strings are `u32 length + bytes`, paths are relative to the trial's folder.

/// The shared page of counters at the start of `<log>.lock` (u64 LE slots), read and written only
/// while holding `flock` on that file.
pub const PAGE_SIZE: u64 = 4096;
/// The last sequence number given.
pub const SLOT_SEQ: usize = 0;
/// How many processes have started (the next process index).
pub const SLOT_PROC: usize = 1;
/// Operations matching `TORTURE_FAULTFS_FAIL_AT` so far.
pub const SLOT_FAIL_COUNT: usize = 2;
/// The log's length after the last whole record.
pub const SLOT_LOG_END: usize = 3;
/// `TORTURE_FAULTFS_FAIL_AT` has fired.
pub const SLOT_FAIL_FIRED: usize = 4;

/// Record tags. The fields after the common head, in order:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// `ppid u32, process_index u64, forked u8, exe bytes`
    Start = 1,
    /// `file, flags i32, created u8, is_dir u8, truncated u8, old_size u64, reserved bytes` (empty)
    Open = 2,
    /// `file, offset u64, old_size u64, data bytes, reserved bytes` (empty: crash states are
    /// rebuilt forward from the start snapshot, so what a write overwrote is never needed)
    Write = 3,
    /// `file, how u8, is_dir u8`
    Sync = 4,
    /// `file, old_size u64, new_size u64, reserved bytes` (empty)
    Truncate = 5,
    /// `file, mode i32, offset u64, len u64, old_size u64, new_size u64, reserved bytes` (empty)
    Fallocate = 6,
    /// `path bytes, ino u64, is_dir u8`
    Unlink = 7,
    /// `from bytes, from_inside u8, to bytes, to_inside u8, ino u64, replaced_ino u64 (0: none),
    /// flags u32, content bytes (whole file when it came from outside the folder)`
    Rename = 8,
    /// `file`
    Close = 9,
    /// `file, offset u64, len u64`
    MmapWrite = 10,
    /// `fd i32, data bytes`
    Ack = 11,
    /// nothing: the process group is being SIGKILLed at this op (`TORTURE_FAULTFS_CRASH_AT`)
    Crash = 12,
    /// `dropped u64`: a record torn by a SIGKILL was cut off the log before this one
    Repair = 13,
    /// `file, what bytes`: something the recorder saw but cannot follow (e.g. a stdio stream)
    Unsupported = 14,
}

impl Tag {
    pub fn from_byte(b: u8) -> Option<Tag> {
        Some(match b {
            1 => Tag::Start,
            2 => Tag::Open,
            3 => Tag::Write,
            4 => Tag::Sync,
            5 => Tag::Truncate,
            6 => Tag::Fallocate,
            7 => Tag::Unlink,
            8 => Tag::Rename,
            9 => Tag::Close,
            10 => Tag::MmapWrite,
            11 => Tag::Ack,
            12 => Tag::Crash,
            13 => Tag::Repair,
            14 => Tag::Unsupported,
            _ => return None,
        })
    }
}

/// Builds one framed record.
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn new(tag: Tag, seq: u64, pid: u32, tid: u32, errno: i32, injected: bool) -> Enc {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; 8]);
        buf.push(tag as u8);
        let mut e = Enc { buf };
        e.u64(seq)
            .u32(pid)
            .u32(tid)
            .i32(errno)
            .u8(u8::from(injected));
        e
    }
    pub fn u8(&mut self, v: u8) -> &mut Enc {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Enc {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Enc {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Enc {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Enc {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
        self
    }
    /// `fd i32, path bytes, ino u64`
    pub fn file(&mut self, fd: i32, path: &[u8], ino: u64) -> &mut Enc {
        self.i32(fd).bytes(path).u64(ino)
    }
    /// Fills in the frame; the buffer is then ready for one `write(2)`.
    pub fn finish(&mut self) -> &[u8] {
        let len = (self.buf.len() - 8) as u32;
        let crc = crc32(&self.buf[8..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        &self.buf
    }
    /// Rewrites the sequence number of a record already built (the recorder learns it under the lock).
    pub fn set_seq(&mut self, seq: u64) {
        self.buf[9..17].copy_from_slice(&seq.to_le_bytes());
    }
}

/// A cursor over one payload.
pub struct Dec<'a> {
    pub rest: &'a [u8],
}

impl<'a> Dec<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.rest.len() < n {
            return Err("record shorter than its fields");
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, &'static str> {
        Ok(self.u8()? != 0)
    }
    pub fn u32(&mut self) -> Result<u32, &'static str> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    pub fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(self.u32()? as i32)
    }
    pub fn u64(&mut self) -> Result<u64, &'static str> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// CRC-32 (IEEE 802.3, as in zlib): enough to tell a torn record from a whole one.
pub fn crc32(bytes: &[u8]) -> u32 {
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
