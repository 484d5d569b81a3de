//! The program's acknowledgements, as the log ordered them.

use std::collections::{BTreeMap, HashMap};

use crate::log::{Op, OpKind};

/// Who acknowledged: the id printed after the number (`ack N ID`), else the process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Writer {
    Id(String),
    Pid(u32),
}

/// The commits acknowledged before a cut, per writer, in the order they were acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AckedCommits {
    pub by_writer: BTreeMap<Writer, Vec<u64>>,
}

impl AckedCommits {
    pub fn total(&self) -> usize {
        self.by_writer.values().map(Vec::len).sum()
    }
    /// The highest commit a writer acknowledged.
    pub fn max(&self, w: &Writer) -> Option<u64> {
        self.by_writer.get(w).and_then(|v| v.iter().copied().max())
    }
    /// Every acknowledged commit, whoever acknowledged it.
    pub fn all(&self) -> impl Iterator<Item = (&Writer, u64)> {
        self.by_writer
            .iter()
            .flat_map(|(w, v)| v.iter().map(move |n| (w, *n)))
    }
}

/// The fd of an ack record the lab appended after reading the line from the program's stdout
/// (`LogAppender::append_ack`), rather than one the recorder saw written.
pub const LAB_READ_FD: i32 = -1;

/// Splits ack-fd bytes into lines per (process, fd) and reads `ack N [ID]` lines; anything else
/// (e.g. `journal_mode wal`) is ignored. Incremental: feed ops in log order.
///
/// The lab appends every ack line it reads from the program's stdout (fd [`LAB_READ_FD`]); when
/// the recorder saw the same line written too (a `write` through libc), the two records are one
/// ack: whichever comes first in the order counts, the other is dropped.
#[derive(Debug, Clone, Default)]
pub struct AckParser {
    partial: HashMap<(u32, i32), Vec<u8>>,
    pub acks: AckedCommits,
    /// Records not yet paired with one from the other source, per number: a recorder record and a
    /// lab record of the same line are one ack; two processes acknowledging the same number (two
    /// instances numbering alike) are two, and each pairs with its own lab record.
    unpaired_written: HashMap<u64, usize>,
    unpaired_read: HashMap<u64, usize>,
    /// Acks that entered the order only through the lab's reading (the recorder never saw them
    /// written: Go's runtime, C stdio buffering, raw syscalls).
    pub lab_read_only: usize,
}

impl AckParser {
    pub fn feed(&mut self, op: &Op) {
        let OpKind::Ack { fd, data } = &op.kind else {
            return;
        };
        let buf = self.partial.entry((op.pid, *fd)).or_default();
        buf.extend_from_slice(data);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line);
            let mut words = text.split_whitespace();
            if words.next() != Some("ack") {
                continue;
            }
            let Some(n) = words.next().and_then(|w| w.parse::<u64>().ok()) else {
                continue;
            };
            let (mine, theirs) = if *fd == LAB_READ_FD {
                (&mut self.unpaired_read, &mut self.unpaired_written)
            } else {
                (&mut self.unpaired_written, &mut self.unpaired_read)
            };
            if let Some(k) = theirs.get_mut(&n).filter(|k| **k > 0) {
                // The other record of this line came first and already counts, at its place.
                *k -= 1;
                if *fd != LAB_READ_FD {
                    self.lab_read_only -= 1;
                }
                continue;
            }
            *mine.entry(n).or_default() += 1;
            if *fd == LAB_READ_FD {
                self.lab_read_only += 1;
            }
            let writer = match words.next() {
                Some(id) => Writer::Id(id.to_string()),
                None => Writer::Pid(op.pid),
            };
            self.acks.by_writer.entry(writer).or_default().push(n);
        }
    }
}

/// The acks whose record precedes the cut (`seq <= cut`).
pub fn acks_before(ops: &[Op], cut: u64) -> AckedCommits {
    parse_before(ops, cut).acks
}

/// The whole parse up to the cut: the acks, and how many only the lab's reading placed.
pub fn parse_before(ops: &[Op], cut: u64) -> AckParser {
    let mut p = AckParser::default();
    for op in ops.iter().take_while(|o| o.seq <= cut) {
        p.feed(op);
    }
    p
}
