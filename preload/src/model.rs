//! The persistence model: what a disk may hold after a power cut, rebuilt forward from the
//! starting folder and the log.
//!
//! - Each file (followed by inode, across renames and unlinks) has a *durable* image — its content
//!   at its last effective `fsync`/`fdatasync`, or at the start — and *pending* changes since then
//!   (writes, truncations, size changes), in log order. At a cut each pending change is kept, lost
//!   or (a write of several sectors) torn at `sector_size` granularity; kept changes are applied in
//!   log order on the durable image, so each byte ends with the value of the last kept write to it.
//! - Names (create, unlink, rename) are pending until their directory is fsynced (strict model, as
//!   POSIX promises: ext4 in practice also commits a new name with the file's fsync). Of the pending
//!   name operations, a prefix survives (file systems journal metadata in order).
//! - `fsync_commits_names`: a file's fsync also commits every earlier name operation (ext4-like).
//! - `lying_disk`: no sync makes anything durable. `powersafe_overwrite = false`: the sector in
//!   which a write tore is garbage, including bytes outside the write.
//! - `sync_file_range` and `msync` make nothing durable; failed calls change nothing, except a
//!   failed `fsync`/`fdatasync`: the file's pending writes then never reach the disk (Linux marks
//!   the pages clean after a write-back error), though the page cache still shows them.
//! - `-shm` files are dropped from crash states (SQLite rebuilds them), unless `drop_shm` is false.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::log::{Log, Op, OpKind, SyncHow};
use crate::snapshot::Snapshot;

/// What the simulated disk does with what was not made durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Granularity of torn writes, in bytes (a power of two). `--sector-size`.
    pub sector_size: u32,
    /// A disk that lies about fsync: nothing is ever durable. `--lying-disk`.
    pub lying_disk: bool,
    /// A write never damages bytes outside its range (SQLite's default assumption, psow.html).
    /// `--no-powersafe-overwrite` sets it false.
    pub powersafe_overwrite: bool,
    /// [`Variant::Random`]: chance that a pending change reached the disk.
    pub keep_probability: f64,
    /// [`Variant::Random`]: chance that a kept write of several sectors landed only in part.
    pub torn_probability: f64,
    /// Leave `-shm` files out of crash states.
    pub drop_shm: bool,
    /// An effective `fsync`/`fdatasync` of any file also makes every name operation before it
    /// durable, as a journaling file system's commit does (ext4, XFS, btrfs in practice; POSIX does
    /// not promise it). False (the default) is the strict model: only a directory fsync does.
    pub fsync_commits_names: bool,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            sector_size: 512,
            lying_disk: false,
            powersafe_overwrite: true,
            keep_probability: 0.5,
            torn_probability: 0.2,
            drop_shm: true,
            fsync_commits_names: false,
        }
    }
}

impl Model {
    /// One line naming the fix, for bad input.
    pub fn validate(&self) -> Result<(), String> {
        if !self.sector_size.is_power_of_two() || self.sector_size > 1 << 20 {
            return Err(format!(
                "--sector-size {}: give a power of two from 1 to 1048576 (e.g. 512 or 4096)",
                self.sector_size
            ));
        }
        for (name, p) in [
            ("keep probability", self.keep_probability),
            ("torn probability", self.torn_probability),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} {p}: give a number from 0 to 1"));
            }
        }
        Ok(())
    }
}

/// What happens at the cut to what was not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Everything reached the disk: the state a SIGKILL leaves (the page cache survives).
    KeepAll,
    /// Nothing pending reached the disk: only what was synced.
    LoseAll,
    /// Everything pending reached the disk except the last pending write of each file, which tore:
    /// the first half of its sectors landed (a one-sector write is lost).
    TearLast,
    /// Each pending change kept, lost or torn as drawn from the seed (and the model's
    /// probabilities); a prefix of the pending name operations survives.
    Random { seed: u64 },
}

/// A cut: every op with `seq <= after` happened, none after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cut {
    pub after: u64,
}

#[derive(Debug, Clone)]
enum Change {
    /// Read from the log when the replay reaches the write; kept only until a sync makes it
    /// durable (a replay holds the files and their unsynced writes, never the whole log).
    Write {
        offset: u64,
        data: Vec<u8>,
        seq: u64,
    },
    SetSize(u64),
    Zero {
        offset: u64,
        len: u64,
    },
}

#[derive(Debug, Clone, Default)]
struct Inode {
    durable: Vec<u8>,
    cur: Vec<u8>,
    pending: Vec<Change>,
    /// Cached [`file_hash`] of `cur` and `durable` (cleared when they change).
    cur_hash: Cell<Option<u64>>,
    durable_hash: Cell<Option<u64>>,
}

impl Inode {
    fn new(data: Vec<u8>) -> Inode {
        Inode {
            durable: data.clone(),
            cur: data,
            ..Inode::default()
        }
    }
}

/// A fast 64-bit hash of a file's bytes (four multiply-xorshift lanes, SplitMix64 finish): tells
/// crash states apart for deduplication, not meant to resist an adversary.
pub(crate) fn file_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes = [
        0x243F_6A88_85A3_08D3u64,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *lane = (*lane ^ u64::from_le_bytes(w)).wrapping_mul(K);
            *lane ^= *lane >> 29;
        }
    }
    let mut h = data.len() as u64;
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(K).rotate_left(27);
    }
    for &byte in blocks.remainder() {
        h = (h ^ u64::from(byte)).wrapping_mul(K);
    }
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A file's part of an effective key: a `-wal` file by the prefix recovery uses (tagged, so it
/// never equals the hash of a file of the same bytes), any other by its bytes.
fn effective_file_hash(path: &Path, data: &[u8], cell: &Cell<Option<u64>>) -> u64 {
    if path.as_os_str().as_encoded_bytes().ends_with(b"-wal") {
        let used = crate::wal::recovered_prefix(data);
        file_hash(&data[..used.prefix]) ^ 0x5741_4C5F_5052_4546
    } else {
        cached(cell, data)
    }
}

fn cached(cell: &Cell<Option<u64>>, data: &[u8]) -> u64 {
    cell.get().unwrap_or_else(|| {
        let h = file_hash(data);
        cell.set(Some(h));
        h
    })
}

#[derive(Debug, Clone)]
enum NameOp {
    Link { path: PathBuf, id: usize },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl NameOp {
    fn dir(&self) -> PathBuf {
        let p = match self {
            NameOp::Link { path, .. } | NameOp::Unlink { path } => path,
            NameOp::Rename { to, .. } => to,
        };
        p.parent().map(Path::to_path_buf).unwrap_or_default()
    }
    fn apply(&self, names: &mut BTreeMap<PathBuf, usize>) {
        match self {
            NameOp::Link { path, id } => {
                names.insert(path.clone(), *id);
            }
            NameOp::Unlink { path } => {
                names.remove(path);
            }
            NameOp::Rename { from, to } => {
                if let Some(id) = names.remove(from) {
                    names.insert(to.clone(), id);
                }
            }
        }
    }
}

/// The replay: the model's state after a prefix of the log.
#[derive(Debug, Clone)]
pub(crate) struct Replay<'a> {
    log: &'a Log,
    ops: &'a [Op],
    next: usize,
    model: Model,
    inodes: Vec<Inode>,
    by_ino: HashMap<u64, usize>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    pending_names: Vec<NameOp>,
    /// Operations on files the snapshot did not hold (content unknown, taken as empty).
    pub unknown_files: u64,
    /// A change that would have grown a file past [`MAX_FILE`] (ignored: files live in memory).
    pub too_large: Option<u64>,
}

/// The largest file the model rebuilds (it keeps files in memory).
pub const MAX_FILE: u64 = 1 << 34;

fn change_end(c: &Change) -> u64 {
    match c {
        Change::Write { offset, data, .. } => offset.saturating_add(data.len() as u64),
        Change::SetSize(n) => *n,
        Change::Zero { .. } => 0,
    }
}

fn apply(buf: &mut Vec<u8>, c: &Change) {
    match c {
        Change::Write { offset, data, .. } => write_at(buf, *offset, data),
        Change::SetSize(n) => buf.resize(*n as usize, 0),
        Change::Zero { offset, len } => {
            let end = (*offset + *len).min(buf.len() as u64) as usize;
            let start = (*offset as usize).min(end);
            buf[start..end].fill(0);
        }
    }
}

fn write_at(buf: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let off = offset as usize;
    if buf.len() < off + data.len() {
        buf.resize(off + data.len(), 0);
    }
    buf[off..off + data.len()].copy_from_slice(data);
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Sectors (absolute, `sector`-aligned pieces) a write covers.
fn pieces(offset: u64, len: usize, sector: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = offset;
    let end = offset + len as u64;
    while at < end {
        let next = ((at / sector + 1) * sector).min(end);
        out.push((at, next));
        at = next;
    }
    out
}

impl<'a> Replay<'a> {
    pub(crate) fn new(start: &Snapshot, log: &'a Log, model: &Model) -> Replay<'a> {
        let mut r = Replay {
            log,
            ops: &log.ops,
            next: 0,
            model: model.clone(),
            inodes: Vec::new(),
            by_ino: HashMap::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            pending_names: Vec::new(),
            unknown_files: 0,
            too_large: None,
        };
        for (path, f) in &start.files {
            let id = r.inodes.len();
            r.inodes.push(Inode::new(f.data.clone()));
            r.by_ino.insert(f.ino, id);
            r.names.insert(path.clone(), id);
        }
        r.durable_names = r.names.clone();
        r
    }

    /// Refuses a log with a file larger than the model keeps in memory.
    pub(crate) fn check_size(&self) -> Result<(), String> {
        match self.too_large {
            Some(n) => Err(format!(
                "a file of the folder grows to {n} bytes; the crash-state builder keeps files in \
                 memory and stops at {MAX_FILE}: use a smaller workload"
            )),
            None => Ok(()),
        }
    }

    /// The sequence number of the last op applied (0 before any).
    pub(crate) fn position(&self) -> u64 {
        if self.next == 0 {
            0
        } else {
            self.ops[self.next - 1].seq
        }
    }

    /// Applies every op with `seq <= cut`.
    pub(crate) fn advance_to(&mut self, cut: u64) {
        while let Some(op) = self.ops.get(self.next) {
            if op.seq > cut {
                break;
            }
            self.next += 1;
            self.apply_op(op);
        }
    }

    fn inode(&mut self, ino: u64) -> usize {
        if let Some(&id) = self.by_ino.get(&ino) {
            return id;
        }
        self.unknown_files += 1;
        let id = self.inodes.len();
        self.inodes.push(Inode::default());
        self.by_ino.insert(ino, id);
        id
    }

    fn change(&mut self, ino: u64, c: Change) {
        if change_end(&c) > MAX_FILE {
            self.too_large.get_or_insert(change_end(&c));
            return;
        }
        let id = self.inode(ino);
        let inode = &mut self.inodes[id];
        apply(&mut inode.cur, &c);
        inode.cur_hash.set(None);
        inode.pending.push(c);
    }

    fn name_op(&mut self, op: NameOp) {
        op.apply(&mut self.names);
        self.pending_names.push(op);
    }

    fn apply_op(&mut self, op: &Op) {
        if op.errno != 0 {
            // A failed fsync (real or injected): Linux marks the pages clean after a write-back
            // error, so the file's pending writes never reach the disk, even if a later fsync
            // succeeds; the page cache (what a SIGKILL leaves) still holds them.
            if let OpKind::Sync {
                ino,
                how,
                is_dir: false,
                ..
            } = &op.kind
            {
                if how.is_durable() && !self.model.lying_disk {
                    if let Some(&id) = self.by_ino.get(ino) {
                        self.inodes[id].pending.clear();
                    }
                }
            }
            return;
        }
        match &op.kind {
            OpKind::Open {
                path,
                ino,
                created,
                truncated,
                is_dir,
                ..
            } => {
                if *is_dir {
                    return;
                }
                if *created {
                    let id = self.inodes.len();
                    self.inodes.push(Inode::default());
                    self.by_ino.insert(*ino, id);
                    self.name_op(NameOp::Link {
                        path: path.clone(),
                        id,
                    });
                } else if !self.by_ino.contains_key(ino) {
                    // Existed, but not in the snapshot (made by something the recorder did not see).
                    let id = self.inode(*ino);
                    self.names.insert(path.clone(), id);
                    self.durable_names.insert(path.clone(), id);
                }
                if *truncated {
                    self.change(*ino, Change::SetSize(0));
                }
            }
            OpKind::Write {
                ino, offset, data, ..
            } => self.change(
                *ino,
                Change::Write {
                    offset: *offset,
                    data: self.log.data(*data),
                    seq: op.seq,
                },
            ),
            OpKind::Truncate { ino, new_size, .. } => self.change(*ino, Change::SetSize(*new_size)),
            OpKind::Fallocate {
                ino,
                mode,
                offset,
                len,
                old_size,
                new_size,
                ..
            } => {
                if mode & (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE) != 0 {
                    self.change(
                        *ino,
                        Change::Zero {
                            offset: *offset,
                            len: *len,
                        },
                    );
                }
                if new_size != old_size {
                    self.change(*ino, Change::SetSize(*new_size));
                }
            }
            OpKind::Sync {
                ino,
                how,
                is_dir,
                path,
                ..
            } => {
                if self.model.lying_disk || !how.is_durable() {
                    return;
                }
                if *how == SyncHow::All {
                    for inode in &mut self.inodes {
                        for c in inode.pending.drain(..) {
                            apply(&mut inode.durable, &c);
                        }
                        inode.durable_hash.set(None);
                    }
                    for n in self.pending_names.drain(..) {
                        n.apply(&mut self.durable_names);
                    }
                    return;
                }
                if *is_dir {
                    let dir = path.clone();
                    let (now, later): (Vec<NameOp>, Vec<NameOp>) =
                        self.pending_names.drain(..).partition(|n| n.dir() == dir);
                    for n in &now {
                        n.apply(&mut self.durable_names);
                    }
                    self.pending_names = later;
                } else if let Some(&id) = self.by_ino.get(ino) {
                    let inode = &mut self.inodes[id];
                    for c in inode.pending.drain(..) {
                        apply(&mut inode.durable, &c);
                    }
                    inode.durable_hash.set(None);
                    if self.model.fsync_commits_names {
                        for n in self.pending_names.drain(..) {
                            n.apply(&mut self.durable_names);
                        }
                    }
                }
            }
            OpKind::Unlink {
                path,
                is_dir: false,
                ..
            } => self.name_op(NameOp::Unlink { path: path.clone() }),
            OpKind::Rename {
                from,
                to,
                content,
                ino,
                ..
            } => match (from, to) {
                (Some(f), Some(t)) => self.name_op(NameOp::Rename {
                    from: f.clone(),
                    to: t.clone(),
                }),
                (None, Some(t)) => {
                    let id = self.inodes.len();
                    self.inodes.push(Inode::new(content.clone()));
                    self.by_ino.insert(*ino, id);
                    self.name_op(NameOp::Link {
                        path: t.clone(),
                        id,
                    });
                }
                (Some(f), None) => self.name_op(NameOp::Unlink { path: f.clone() }),
                (None, None) => {}
            },
            _ => {}
        }
    }

    /// The folder's files at this point under `variant`.
    pub(crate) fn materialize(&self, variant: Variant) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut rng = self.rng_for(variant);
        let names = self.names_under(variant, &mut rng);
        let mut out = BTreeMap::new();
        for (path, id) in names {
            if self.model.drop_shm && path.as_os_str().as_encoded_bytes().ends_with(b"-shm") {
                continue;
            }
            out.insert(path, self.file_content(id, variant, &mut rng));
        }
        out
    }

    /// The generator a state's draws come from (the same for its names and its files).
    fn rng_for(&self, variant: Variant) -> Rng {
        match variant {
            Variant::Random { seed } => Rng::new(seed ^ self.position().wrapping_mul(31)),
            _ => Rng::new(self.position()),
        }
    }

    /// The names the state under `variant` holds: the durable ones, then the prefix of the
    /// pending name operations that survived.
    fn names_under(&self, variant: Variant, rng: &mut Rng) -> BTreeMap<PathBuf, usize> {
        let mut names = self.durable_names.clone();
        for n in &self.pending_names {
            let keep = match variant {
                Variant::KeepAll | Variant::TearLast => true,
                Variant::LoseAll => false,
                Variant::Random { .. } => rng.chance(self.model.keep_probability),
            };
            if !keep {
                break;
            }
            n.apply(&mut names);
        }
        names
    }

    /// The state's *effective* key under `variant`: as [`Self::state_hash`], except that a `-wal`
    /// file counts only by what SQLite's recovery uses of it ([`crate::wal::recovered_prefix`]):
    /// two states with equal keys recover to the same database. When `build(key)` says so, also
    /// the state's files, exactly as [`Self::materialize`] builds them (the same draws in the same
    /// order); otherwise no file is copied.
    pub(crate) fn effective(
        &self,
        variant: Variant,
        build: impl FnOnce(u64) -> bool,
    ) -> (u64, Option<BTreeMap<PathBuf, Vec<u8>>>) {
        let mut h: u64 = 0x6A09_E667_F3BC_C908;
        let mut add = |path: &Path, fh: u64| {
            let p = file_hash(path.as_os_str().as_encoded_bytes());
            h = (h ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ fh;
        };
        let shm = |path: &Path| {
            self.model.drop_shm && path.as_os_str().as_encoded_bytes().ends_with(b"-shm")
        };
        match variant {
            Variant::KeepAll | Variant::LoseAll => {
                let keep = variant == Variant::KeepAll;
                let names = if keep {
                    &self.names
                } else {
                    &self.durable_names
                };
                for (path, &id) in names.iter().filter(|(p, _)| !shm(p)) {
                    let inode = &self.inodes[id];
                    let (data, cell) = if keep {
                        (&inode.cur, &inode.cur_hash)
                    } else {
                        (&inode.durable, &inode.durable_hash)
                    };
                    add(path, effective_file_hash(path, data, cell));
                }
                let files = build(h).then(|| self.materialize(variant));
                (h, files)
            }
            _ => {
                let mut rng = self.rng_for(variant);
                let names = self.names_under(variant, &mut rng);
                let mut built = Vec::with_capacity(names.len());
                for (path, id) in names.into_iter().filter(|(p, _)| !shm(p)) {
                    let inode = &self.inodes[id];
                    // A file with nothing pending is its durable image under every variant, and
                    // building it draws nothing: hashed from the cache, copied only if asked.
                    let data = if inode.pending.is_empty() {
                        add(
                            &path,
                            effective_file_hash(&path, &inode.durable, &inode.durable_hash),
                        );
                        None
                    } else {
                        let data = self.file_content(id, variant, &mut rng);
                        add(&path, effective_file_hash(&path, &data, &Cell::new(None)));
                        Some(data)
                    };
                    built.push((path, id, data));
                }
                let files = build(h).then(|| {
                    built
                        .into_iter()
                        .map(|(p, id, d)| (p, d.unwrap_or_else(|| self.inodes[id].durable.clone())))
                        .collect()
                });
                (h, files)
            }
        }
    }

    /// The state's content hash (paths and file hashes); keep-all and lose-all reuse each file's
    /// cached hash, so only the files that changed since the last cut are hashed again.
    pub(crate) fn state_hash(&self, variant: Variant) -> u64 {
        let mut h: u64 = 0x6A09_E667_F3BC_C908;
        let mut add = |path: &Path, fh: u64| {
            let p = file_hash(path.as_os_str().as_encoded_bytes());
            h = (h ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ fh;
        };
        match variant {
            Variant::KeepAll | Variant::LoseAll => {
                let keep = variant == Variant::KeepAll;
                let names = if keep {
                    &self.names
                } else {
                    &self.durable_names
                };
                for (path, &id) in names {
                    if self.model.drop_shm && path.as_os_str().as_encoded_bytes().ends_with(b"-shm")
                    {
                        continue;
                    }
                    let inode = &self.inodes[id];
                    let fh = if keep {
                        cached(&inode.cur_hash, &inode.cur)
                    } else {
                        cached(&inode.durable_hash, &inode.durable)
                    };
                    add(path, fh);
                }
            }
            _ => {
                // As `materialize` builds them, but a file with nothing pending is its durable
                // image and draws nothing: its cached hash, no copy of it.
                let mut rng = self.rng_for(variant);
                for (path, id) in self.names_under(variant, &mut rng) {
                    if self.model.drop_shm && path.as_os_str().as_encoded_bytes().ends_with(b"-shm")
                    {
                        continue;
                    }
                    let inode = &self.inodes[id];
                    let fh = if inode.pending.is_empty() {
                        cached(&inode.durable_hash, &inode.durable)
                    } else {
                        file_hash(&self.file_content(id, variant, &mut rng))
                    };
                    add(&path, fh);
                }
            }
        }
        h
    }

    fn file_content(&self, id: usize, variant: Variant, rng: &mut Rng) -> Vec<u8> {
        let inode = &self.inodes[id];
        match variant {
            Variant::KeepAll => return inode.cur.clone(),
            Variant::LoseAll => return inode.durable.clone(),
            _ => {}
        }
        let sector = u64::from(self.model.sector_size.max(1));
        let last_write = inode
            .pending
            .iter()
            .rposition(|c| matches!(c, Change::Write { .. }));
        let mut buf = inode.durable.clone();
        for (i, c) in inode.pending.iter().enumerate() {
            // (kept sectors as a range of piece indexes, torn?)
            let Change::Write { offset, data, seq } = c else {
                let keep = match variant {
                    Variant::TearLast => true,
                    _ => rng.chance(self.model.keep_probability),
                };
                if keep {
                    apply(&mut buf, c);
                }
                continue;
            };
            let ps = pieces(*offset, data.len(), sector);
            let n = ps.len();
            let kept: std::ops::Range<usize> = match variant {
                Variant::TearLast if Some(i) == last_write => 0..n / 2,
                Variant::TearLast => 0..n,
                _ => {
                    if !rng.chance(self.model.keep_probability) {
                        0..0
                    } else if n > 1 && rng.chance(self.model.torn_probability) {
                        let k = 1 + rng.below(n as u64 - 1) as usize;
                        if rng.chance(0.5) {
                            0..k
                        } else {
                            n - k..n
                        }
                    } else {
                        0..n
                    }
                }
            };
            for (start, end) in &ps[kept.clone()] {
                let from = (start - offset) as usize;
                let to = (end - offset) as usize;
                write_at(&mut buf, *start, &data[from..to]);
            }
            let torn = !kept.is_empty() && kept.len() != n;
            if torn && !self.model.powersafe_overwrite {
                // The sector where the write tore holds garbage, whole.
                let at = if kept.start == 0 {
                    ps[kept.end].0
                } else {
                    ps[kept.start - 1].0
                };
                let s = at / sector * sector;
                let end = (s + sector).min(buf.len() as u64);
                let mut g = Rng::new(*seq ^ s);
                for b in &mut buf[(s as usize).min(end as usize)..end as usize] {
                    *b = g.next_u64() as u8;
                }
            }
        }
        buf
    }
}

/// The folder's files after the ops up to `cut` under `variant` (a kill-at-op is
/// `Variant::KeepAll`).
pub fn build_state(
    start: &Snapshot,
    log: &Log,
    cut: Cut,
    variant: Variant,
    model: &Model,
) -> Result<BTreeMap<PathBuf, Vec<u8>>, String> {
    model.validate()?;
    let mut r = Replay::new(start, log, model);
    r.advance_to(cut.after);
    r.check_size()?;
    Ok(r.materialize(variant))
}

/// Replaces the contents of `dir` with `files`.
pub fn write_files(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> std::io::Result<()> {
    if dir.exists() {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
    } else {
        std::fs::create_dir_all(dir)?;
    }
    for (rel, data) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, data)?;
    }
    Ok(())
}
