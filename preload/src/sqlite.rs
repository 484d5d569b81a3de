//! What the log shows of SQLite's own protocol: where its WAL checkpoints are, so a report can
//! count the crash states whose cut fell inside one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::log::{Log, OpKind};
use crate::model::Cut;

/// One WAL checkpoint: the writes to a database file while its `-wal` existed (in WAL mode SQLite
/// writes the database file only when it checkpoints), up to the sync of that file that ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub db: PathBuf,
    /// The first write to the database file.
    pub first: u64,
    /// The sync that made it durable (or the last op of the log if it never came).
    pub last: u64,
}

impl Checkpoint {
    /// The cut fell after the checkpoint's first write and before its sync completed.
    pub fn contains(&self, cut: Cut) -> bool {
        cut.after >= self.first && cut.after < self.last
    }
}

fn sidecar(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The WAL checkpoints in a log, in order.
pub fn wal_checkpoints(log: &Log) -> Vec<Checkpoint> {
    let mut live_wal: BTreeSet<PathBuf> = BTreeSet::new();
    let mut open: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for op in &log.ops {
        if op.errno != 0 {
            continue;
        }
        match &op.kind {
            OpKind::Open {
                path,
                is_dir: false,
                ..
            } if path.as_os_str().as_encoded_bytes().ends_with(b"-wal") => {
                live_wal.insert(path.clone());
            }
            OpKind::Unlink { path, .. } => {
                live_wal.remove(path);
            }
            OpKind::Write { path, .. }
                if live_wal.contains(&sidecar(path, "-wal")) && !open.contains_key(path) =>
            {
                open.insert(path.clone(), op.seq);
            }
            OpKind::Sync {
                path,
                how,
                is_dir: false,
                ..
            } if how.is_durable() => {
                if let Some(first) = open.remove(path) {
                    out.push(Checkpoint {
                        db: path.clone(),
                        first,
                        last: op.seq,
                    });
                }
            }
            _ => {}
        }
    }
    let end = log.ops.last().map(|o| o.seq).unwrap_or(0);
    for (db, first) in open {
        out.push(Checkpoint {
            db,
            first,
            last: end,
        });
    }
    out.sort_by_key(|c| c.first);
    out
}
