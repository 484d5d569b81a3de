//! Power-loss reconstruction: after the writer is dead, rewind its files to something a disk could
//! hold if the power had failed at that instant, following the operation log.
//!
//! The real files hold every write the writer made (the page cache survived its SIGKILL). A power
//! cut keeps only what was made durable, plus an arbitrary part of the rest. The model, after
//! SQLite's own crash VFS (`src/test6.c`) and the assumptions SQLite documents (atomiccommit.html,
//! psow.html):
//!
//! - *Data.* `fsync` of a file makes every earlier write and truncation of that file durable (all
//!   handles, all processes). Each later write is lost (its pre-image comes back) or reached the
//!   disk: whole, or torn at sector granularity, keeping a prefix or a suffix of its sectors, never
//!   the middle. A lost extension of the file is undone (the old size comes back). Truncations are
//!   kept or undone. Each operation is decided on its own, so non-durable writes land in any order,
//!   as the OS may reorder them. Decisions are made in reverse log order against a per-byte record
//!   of what is already decided, so overlapping writes resolve as a real disk would: each byte ends
//!   up with the value of the last kept write to it, or of the durable state if none was kept.
//! - *Names.* Creating or deleting a file is durable only once its directory is fsynced: by
//!   `xDelete` with `syncDir`, or by the unix VFS itself at the first `xSync` of a journal, WAL or
//!   super-journal opened with CREATE (os_unix.c `UNIXFILE_DIRSYNC`). Of the creates and deletes of
//!   one path after its directory's last sync, a prefix survives (metadata is journaled in order):
//!   an undone create removes the file, an undone delete resurrects it with its logged content.
//!   This is what separates DELETE+FULL (journal deleted without a directory sync: the last commit
//!   may roll back) from DELETE+EXTRA.
//! - Whatever was on disk before the log started is taken as durable: start each trial from a
//!   database that already exists.
//!
//! Not modelled: the `-shm` file (SQLite rebuilds it from the WAL on the first open after a crash),
//! growth through `SQLITE_FCNTL_SIZE_HINT` with mmap (no logged operation), a lost extension that
//! leaves the new size with garbage in it (the size and the data of a write land together), and
//! file systems that need a directory sync for a file's size (the size is treated as file data).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::log::{LogEvent, LogRecord};

/// What the simulated disk does with writes that were not made durable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerLossModel {
    /// Granularity of torn writes, in bytes.
    pub sector_size: u32,
    /// Chance that a non-durable write (or truncation, create, delete) reached the disk anyway.
    /// 0 loses everything that was not made durable; 1 (with no tearing) keeps everything.
    pub keep_probability: f64,
    /// Chance that a non-durable write of several sectors that reached the disk did so only in
    /// part (torn: a prefix or a suffix of its sectors landed).
    pub torn_probability: f64,
    /// A disk that lies about fsync: no sync makes anything durable.
    pub ignore_fsync: bool,
    /// SQLite's default assumption (psow.html): a write never damages bytes outside its range. When
    /// false, the sector in which a write tore is garbage, including bytes the write did not cover.
    pub powersafe_overwrite: bool,
}

impl Default for PowerLossModel {
    fn default() -> Self {
        PowerLossModel {
            sector_size: 512,
            keep_probability: 0.5,
            torn_probability: 0.2,
            ignore_fsync: false,
            powersafe_overwrite: true,
        }
    }
}

/// What the reconstruction did, for the trial's CSV detail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PowerLossReport {
    pub writes_kept: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
    pub truncations_kept: u64,
    pub truncations_lost: u64,
    /// Logged operations at or after the crash point, undone unconditionally.
    pub ops_after_cut: u64,
    /// Files whose content or size was rewound.
    pub files_rewound: Vec<PathBuf>,
    /// Files whose creation was not durable and which were removed.
    pub files_removed: Vec<PathBuf>,
    /// Files whose deletion was not durable and which were re-created with their logged content.
    pub files_resurrected: Vec<PathBuf>,
}

impl PowerLossReport {
    /// One line for the CSV's `detail` column.
    pub fn detail(&self) -> String {
        let names = |paths: &[PathBuf]| {
            paths
                .iter()
                .map(|p| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut s = format!(
            "power loss: writes kept {} lost {} torn {}, truncations kept {} lost {}",
            self.writes_kept,
            self.writes_lost,
            self.writes_torn,
            self.truncations_kept,
            self.truncations_lost
        );
        for (label, paths) in [
            ("rewound", &self.files_rewound),
            ("removed", &self.files_removed),
            ("resurrected", &self.files_resurrected),
        ] {
            if !paths.is_empty() {
                s.push_str(&format!("; {label} {}", names(paths)));
            }
        }
        s
    }
}

/// Rewinds the files named in `log` to a state a disk could hold after a power cut just before
/// operation `crash_op`. Run it only after every writer is dead.
///
/// Logged operations with `op >= crash_op` are undone unconditionally, as if the cut came before
/// them. A writer stopped by a [`CrashAt`](super::CrashAt) dies before logging the crash point, so
/// its log holds exactly the operations performed: pass `u64::MAX` (the crash point's `op` gives
/// the same result when its filter is `any`; with another filter it counts other things). After a SIGKILL from outside, pass `u64::MAX`; the last
/// record may then describe an operation that was logged but not yet performed, which is treated
/// as performed. With several writer processes in one log, op indexes are per process: pass
/// `u64::MAX`. Decisions come from `rng` in a fixed order: the same log, model and seed give the
/// same files.
pub fn simulate_power_loss(
    log: &[LogRecord],
    crash_op: u64,
    model: &PowerLossModel,
    rng: &mut ChaCha8Rng,
) -> std::io::Result<PowerLossReport> {
    let timeline = Timeline::build(log, crash_op, model);
    let mut report = PowerLossReport {
        ops_after_cut: log.iter().filter(|r| r.op >= crash_op).count() as u64,
        ..PowerLossReport::default()
    };
    let mut disk = Disk {
        log,
        crash_op,
        model,
        rng,
        report: &mut report,
    };
    for (path, history) in &timeline.paths {
        let durable_upto = timeline.dir_synced.get(&history.dir).copied();
        disk.settle_path(path, history, durable_upto)?;
    }
    Ok(report)
}

/// One life of a path between its creation and its deletion.
#[derive(Default)]
struct Incarnation {
    /// Log index of the delete that ended it; `None` if it is alive at the end of the log.
    deleted_at: Option<usize>,
    /// Log indexes of its writes and truncations.
    changes: Vec<usize>,
    /// Log index of its last sync that made anything durable.
    last_sync: Option<usize>,
}

/// A create or delete of a path (log index, incarnation).
#[derive(Clone, Copy)]
enum NameEvent {
    Create { at: usize },
    Delete { at: usize, incarnation: usize },
}

impl NameEvent {
    fn at(self) -> usize {
        match self {
            NameEvent::Create { at } | NameEvent::Delete { at, .. } => at,
        }
    }
}

struct History {
    dir: PathBuf,
    incarnations: Vec<Incarnation>,
    events: Vec<NameEvent>,
    /// The incarnation alive at the end of the log.
    live: Option<usize>,
}

impl History {
    /// The live incarnation, starting one if the log never saw this one created (it existed before
    /// the log began, so its creation is durable).
    fn live(&mut self) -> usize {
        *self.live.get_or_insert_with(|| {
            self.incarnations.push(Incarnation::default());
            self.incarnations.len() - 1
        })
    }
}

/// The log, sorted by path and directory.
struct Timeline {
    /// Sorted, so the RNG is consumed in the same order on every run.
    paths: BTreeMap<PathBuf, History>,
    /// The log index of each directory's last effective fsync.
    dir_synced: HashMap<PathBuf, usize>,
}

impl Timeline {
    fn build(log: &[LogRecord], crash_op: u64, model: &PowerLossModel) -> Timeline {
        let mut paths: BTreeMap<PathBuf, History> = BTreeMap::new();
        let mut dir_synced = HashMap::new();
        for (i, rec) in log.iter().enumerate() {
            if !rec.file.is_counted() {
                continue;
            }
            let effective = rec.op < crash_op && !model.ignore_fsync;
            let h = paths.entry(rec.path.clone()).or_insert_with(|| History {
                dir: rec.path.parent().map(Path::to_path_buf).unwrap_or_default(),
                incarnations: Vec::new(),
                events: Vec::new(),
                live: None,
            });
            match &rec.event {
                LogEvent::Open { existed: true } => {
                    h.live();
                }
                LogEvent::Open { existed: false } => {
                    h.incarnations.push(Incarnation::default());
                    h.live = Some(h.incarnations.len() - 1);
                    h.events.push(NameEvent::Create { at: i });
                }
                LogEvent::Write { .. } | LogEvent::Truncate { .. } => {
                    let inc = h.live();
                    h.incarnations[inc].changes.push(i);
                }
                LogEvent::Sync { dir_sync, .. } => {
                    let inc = h.live();
                    if effective {
                        h.incarnations[inc].last_sync = Some(i);
                        if *dir_sync {
                            dir_synced.insert(h.dir.clone(), i);
                        }
                    }
                }
                LogEvent::Delete {
                    sync_dir,
                    content: Some(_),
                } => {
                    let inc = h.live();
                    h.incarnations[inc].deleted_at = Some(i);
                    h.events.push(NameEvent::Delete {
                        at: i,
                        incarnation: inc,
                    });
                    h.live = None;
                    if effective && *sync_dir {
                        dir_synced.insert(h.dir.clone(), i);
                    }
                }
                // Deleting a file that was not there changes nothing.
                LogEvent::Delete { content: None, .. } => {}
            }
        }
        Timeline { paths, dir_synced }
    }
}

/// The reconstruction in progress.
struct Disk<'a> {
    log: &'a [LogRecord],
    crash_op: u64,
    model: &'a PowerLossModel,
    rng: &'a mut ChaCha8Rng,
    report: &'a mut PowerLossReport,
}

/// How much of a non-durable write reached the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Kept,
    Lost,
    /// The first `sectors` sectors (prefix) or the last ones (suffix) were kept.
    Torn {
        prefix: bool,
        sectors: usize,
    },
}

impl Disk<'_> {
    fn happened(&self, index: usize) -> bool {
        self.log[index].op < self.crash_op
    }

    fn keep(&mut self) -> bool {
        self.rng
            .random_bool(self.model.keep_probability.clamp(0.0, 1.0))
    }

    fn settle_path(
        &mut self,
        path: &Path,
        history: &History,
        durable_upto: Option<usize>,
    ) -> std::io::Result<()> {
        // Which incarnation (if any) the directory holds after the cut.
        let pending: Vec<NameEvent> = history
            .events
            .iter()
            .copied()
            .filter(|e| durable_upto.is_none_or(|d| e.at() > d))
            .collect();
        let mut survived = 0;
        for e in &pending {
            if !self.happened(e.at()) || !self.keep() {
                break;
            }
            survived += 1;
        }
        let holds = match pending.get(survived) {
            None => history.live,
            Some(NameEvent::Create { .. }) => None,
            Some(NameEvent::Delete { incarnation, .. }) => Some(*incarnation),
        };
        let Some(inc) = holds else {
            match std::fs::remove_file(path) {
                Ok(()) => self.report.files_removed.push(path.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            return Ok(());
        };
        let incarnation = &history.incarnations[inc];
        let resurrected = holds != history.live;
        let base = match incarnation.deleted_at.filter(|_| resurrected) {
            Some(at) => match &self.log[at].event {
                LogEvent::Delete {
                    content: Some(c), ..
                } => c.clone(),
                _ => Vec::new(),
            },
            None => match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            },
        };
        let pending_changes: Vec<usize> = incarnation
            .changes
            .iter()
            .copied()
            .filter(|&c| incarnation.last_sync.is_none_or(|s| c > s))
            .collect();
        if !resurrected && pending_changes.is_empty() {
            return Ok(());
        }
        let mut image = FileImage::new(base.clone());
        for &c in pending_changes.iter().rev() {
            self.settle_change(&mut image, c);
        }
        if resurrected {
            std::fs::write(path, &image.data)?;
            self.report.files_resurrected.push(path.to_path_buf());
        } else if image.data != base {
            std::fs::write(path, &image.data)?;
            self.report.files_rewound.push(path.to_path_buf());
        }
        Ok(())
    }

    /// Decides the fate of one non-durable write or truncation and applies it to `image`.
    fn settle_change(&mut self, image: &mut FileImage, index: usize) {
        let happened = self.happened(index);
        match &self.log[index].event {
            LogEvent::Write {
                offset,
                len,
                old_size,
                pre_image,
            } => {
                let range = *offset as usize..(*offset as usize + *len as usize);
                let sector = self.model.sector_size.max(1) as usize;
                let pieces = sector_pieces(range.clone(), sector);
                // Torn is a way of reaching the disk: with keep_probability 0 everything is lost.
                let fate = if !happened || !self.keep() {
                    Fate::Lost
                } else if pieces.len() > 1
                    && self
                        .rng
                        .random_bool(self.model.torn_probability.clamp(0.0, 1.0))
                {
                    Fate::Torn {
                        prefix: self.rng.random_bool(0.5),
                        sectors: self.rng.random_range(1..pieces.len()),
                    }
                } else {
                    Fate::Kept
                };
                match fate {
                    Fate::Kept => self.report.writes_kept += 1,
                    Fate::Lost => self.report.writes_lost += 1,
                    Fate::Torn { .. } => self.report.writes_torn += 1,
                }
                let tear = image.settle_write(range, *old_size as usize, pre_image, &pieces, fate);
                if let (Some(torn_sector), false) = (tear, self.model.powersafe_overwrite) {
                    let start = torn_sector / sector * sector;
                    image.garble(start..start + sector, self.rng);
                }
            }
            LogEvent::Truncate {
                new_size,
                old_size,
                cut_tail,
            } => {
                let kept = happened && self.keep();
                if kept {
                    self.report.truncations_kept += 1;
                } else {
                    self.report.truncations_lost += 1;
                }
                image.settle_truncate(*new_size as usize, *old_size as usize, cut_tail, kept);
            }
            _ => {}
        }
    }
}

/// `range` cut at sector boundaries.
fn sector_pieces(range: Range<usize>, sector: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let next = ((at / sector + 1) * sector).min(range.end);
        pieces.push(at..next);
        at = next;
    }
    pieces
}

/// A file's bytes being rewound, newest operation first.
///
/// Invariant: every byte not yet `fixed` holds the value it had just after the operation being
/// settled (all later operations touching it were lost and undone). So a kept operation fixes its
/// bytes at their current value, and a lost one puts its pre-image back on the bytes still open.
struct FileImage {
    data: Vec<u8>,
    fixed: Vec<bool>,
    /// The final size is decided (a later size change was kept).
    size_fixed: bool,
    /// The end of the furthest kept byte: a lost extension never cuts a kept write.
    floor: usize,
}

impl FileImage {
    fn new(data: Vec<u8>) -> FileImage {
        FileImage {
            data,
            fixed: Vec::new(),
            size_fixed: false,
            floor: 0,
        }
    }

    fn is_fixed(&self, pos: usize) -> bool {
        self.fixed.get(pos).copied().unwrap_or(false)
    }

    fn fix(&mut self, range: Range<usize>) {
        if self.fixed.len() < range.end {
            self.fixed.resize(range.end, false);
        }
        self.fixed[range].fill(true);
    }

    /// Puts back, on the bytes of `range` still open, what they held before: `old` (which starts
    /// at `old_start`) and zeros past its end (those bytes did not exist).
    fn restore(&mut self, range: Range<usize>, old_start: usize, old: &[u8]) {
        let end = range.end.min(self.data.len());
        for pos in range.start..end {
            if !self.is_fixed(pos) {
                self.data[pos] = old.get(pos - old_start).copied().unwrap_or(0);
            }
        }
    }

    fn restore_size(&mut self, old_size: usize) {
        if !self.size_fixed {
            self.data.resize(old_size.max(self.floor), 0);
        }
    }

    /// Applies a write's fate; returns the position of the sector where it tore, if it did.
    fn settle_write(
        &mut self,
        range: Range<usize>,
        old_size: usize,
        pre_image: &[u8],
        pieces: &[Range<usize>],
        fate: Fate,
    ) -> Option<usize> {
        let n = pieces.len();
        let kept = |i: usize| match fate {
            Fate::Kept => true,
            Fate::Lost => false,
            Fate::Torn {
                prefix: true,
                sectors,
            } => i < sectors,
            Fate::Torn {
                prefix: false,
                sectors,
            } => i >= n - sectors,
        };
        for (i, piece) in pieces.iter().enumerate() {
            if kept(i) {
                self.fix(piece.clone());
                self.floor = self.floor.max(piece.end);
            }
        }
        // The size change of an extending write landed iff its last sector did.
        if range.end > old_size && n > 0 && !self.size_fixed {
            if kept(n - 1) {
                self.size_fixed = true;
            } else {
                self.restore_size(old_size);
            }
        }
        for (i, piece) in pieces.iter().enumerate() {
            if !kept(i) {
                self.restore(piece.clone(), range.start, pre_image);
            }
        }
        match fate {
            Fate::Torn {
                prefix: true,
                sectors,
            } => Some(pieces[sectors].start),
            Fate::Torn {
                prefix: false,
                sectors,
            } => Some(pieces[n - sectors - 1].start),
            _ => None,
        }
    }

    fn settle_truncate(&mut self, new_size: usize, old_size: usize, cut_tail: &[u8], kept: bool) {
        if kept {
            if old_size > new_size {
                self.fix(new_size..old_size);
            }
            self.size_fixed = true;
        } else {
            self.restore_size(old_size);
            self.restore(new_size..old_size, new_size, cut_tail);
        }
    }

    /// Fills the open bytes of `range` (within the file) with garbage and fixes them.
    fn garble(&mut self, range: Range<usize>, rng: &mut ChaCha8Rng) {
        let end = range.end.min(self.data.len());
        if range.start >= end {
            return;
        }
        for pos in range.start..end {
            if !self.is_fixed(pos) {
                self.data[pos] = rng.random();
            }
        }
        self.fix(range.start..end);
    }
}

#[cfg(test)]
#[path = "power_loss_tests.rs"]
mod tests;
