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

/// Splits ack-fd bytes into lines per (process, fd) and reads `ack N [ID]` lines; anything else
/// (e.g. `journal_mode wal`) is ignored. Incremental: feed ops in log order.
#[derive(Debug, Clone, Default)]
pub struct AckParser {
    partial: HashMap<(u32, i32), Vec<u8>>,
    pub acks: AckedCommits,
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
    let mut p = AckParser::default();
    for op in ops.iter().take_while(|o| o.seq <= cut) {
        p.feed(op);
    }
    p.acks
}
