//! Record once, crash everywhere: the crash states one recorded run holds.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::acks::{AckParser, AckedCommits};
use crate::log::{Log, OpKind};
use crate::model::{write_files, Cut, Model, Replay, Rng, Variant};
use crate::snapshot::Snapshot;

/// Where to cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutPoints {
    /// Just before every operation that changes what a disk could hold (write, truncate, create,
    /// unlink, rename, effective sync), and at the end: every distinct instant of the run.
    EveryOp,
    /// Just before every `fsync`/`fdatasync` (of a file or a directory), and at the end: the
    /// instants when the most is pending.
    EverySync,
    /// After exactly these ops (`seq`s).
    Ops(Vec<u64>),
}

/// What to enumerate.
#[derive(Debug, Clone)]
pub struct CrashPlan {
    pub cuts: CutPoints,
    /// Variants tried at every cut.
    pub variants: Vec<Variant>,
    /// Further [`Variant::Random`] draws per cut (seeds derived from `seed`).
    pub random_per_cut: u32,
    /// At most this many distinct states (a seeded sample of them when there are more).
    pub max_states: Option<usize>,
    pub seed: u64,
    pub model: Model,
}

impl CrashPlan {
    /// Every sync boundary with its keep-all, lose-all and tear variants.
    pub fn every_sync(model: Model) -> CrashPlan {
        CrashPlan {
            cuts: CutPoints::EverySync,
            variants: vec![Variant::KeepAll, Variant::LoseAll, Variant::TearLast],
            random_per_cut: 0,
            max_states: None,
            seed: 0,
            model,
        }
    }

    /// Every operation boundary, keep-all and lose-all.
    pub fn every_op(model: Model) -> CrashPlan {
        CrashPlan {
            cuts: CutPoints::EveryOp,
            variants: vec![Variant::KeepAll, Variant::LoseAll],
            ..CrashPlan::every_sync(model)
        }
    }
}

/// One crash state: the folder's files, and the acks made before the cut.
#[derive(Debug, Clone)]
pub struct CrashState {
    pub cut: Cut,
    pub variant: Variant,
    /// Content hash (paths and bytes) that made it distinct.
    pub hash: u64,
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub acks: AckedCommits,
}

impl CrashState {
    /// Replaces the contents of `dir` with this state's files.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        write_files(dir, &self.files)
    }
}

/// A crash state with its effective key ([`Enumeration::states_keyed`]).
#[derive(Debug, Clone)]
pub struct KeyedState {
    /// Its `files` are empty unless `built`.
    pub state: CrashState,
    /// What SQLite's recovery reads of it: its files, each `-wal` only up to the last frame
    /// recovery uses. Equal keys recover to the same database.
    pub effective: u64,
    pub built: bool,
}

/// The distinct crash states of a log, ready to be built one at a time.
pub struct Enumeration<'a> {
    start: &'a Snapshot,
    log: &'a Log,
    model: Model,
    selected: Vec<(u64, Variant, u64)>,
    /// Cut points considered.
    pub cut_points: usize,
    /// (cut, variant) pairs considered.
    pub candidates: usize,
    /// Distinct states among them (by content hash).
    pub distinct: usize,
    /// `max_states` cut the distinct states down to a seeded sample.
    pub sampled: bool,
}

fn changes_state(kind: &OpKind) -> bool {
    match kind {
        OpKind::Write { .. }
        | OpKind::Truncate { .. }
        | OpKind::Fallocate { .. }
        | OpKind::Unlink { .. }
        | OpKind::Rename { .. } => true,
        OpKind::Open {
            created, truncated, ..
        } => *created || *truncated,
        OpKind::Sync { how, .. } => how.is_durable(),
        _ => false,
    }
}

fn cut_points(log: &Log, cuts: &CutPoints) -> Vec<u64> {
    let end = log.ops.last().map(|o| o.seq).unwrap_or(0);
    let mut out: Vec<u64> = match cuts {
        CutPoints::Ops(v) => v.clone(),
        CutPoints::EveryOp => log
            .ops
            .iter()
            .filter(|o| o.errno == 0 && changes_state(&o.kind))
            .map(|o| o.seq - 1)
            .collect(),
        CutPoints::EverySync => log
            .ops
            .iter()
            .filter(|o| {
                o.errno == 0 && matches!(&o.kind, OpKind::Sync { how, .. } if how.is_durable())
            })
            .map(|o| o.seq - 1)
            .collect(),
    };
    if !matches!(cuts, CutPoints::Ops(_)) {
        out.push(end);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Considers every (cut, variant) of `plan`, keeps one per distinct content (the latest cut: it
/// has the most acks), and samples down to `max_states`. Build the states with
/// [`Enumeration::states`].
pub fn enumerate<'a>(
    start: &'a Snapshot,
    log: &'a Log,
    plan: &CrashPlan,
) -> Result<Enumeration<'a>, String> {
    plan.model.validate()?;
    let cuts = cut_points(log, &plan.cuts);
    let mut variants = plan.variants.clone();
    for j in 0..plan.random_per_cut {
        variants.push(Variant::Random {
            seed: plan.seed ^ (u64::from(j) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        });
    }
    let mut replay = Replay::new(start, log, &plan.model);
    let mut best: HashMap<u64, (u64, Variant)> = HashMap::new();
    let mut candidates = 0;
    for &cut in &cuts {
        replay.advance_to(cut);
        for &v in &variants {
            candidates += 1;
            best.insert(replay.state_hash(v), (cut, v));
        }
    }
    replay.check_size()?;
    let distinct = best.len();
    let mut selected: Vec<(u64, Variant, u64)> =
        best.into_iter().map(|(h, (c, v))| (c, v, h)).collect();
    selected.sort_unstable();
    let mut sampled = false;
    if let Some(max) = plan.max_states {
        if selected.len() > max {
            // The states at the last cut (the end of the run: every ack made, every file as the
            // run left it) are always kept; the sample is drawn from the others.
            let last = selected.last().map_or(0, |s| s.0);
            let (mut keep, mut rest): (Vec<_>, Vec<_>) =
                selected.into_iter().partition(|s| s.0 == last);
            keep.truncate(max);
            let room = max - keep.len();
            let mut rng = Rng::new(plan.seed);
            for i in 0..room.min(rest.len()) {
                let j = i + rng.below((rest.len() - i) as u64) as usize;
                rest.swap(i, j);
            }
            rest.truncate(room);
            keep.extend(rest);
            selected = keep;
            selected.sort_unstable();
            sampled = true;
        }
    }
    Ok(Enumeration {
        start,
        log,
        model: plan.model.clone(),
        selected,
        cut_points: cuts.len(),
        candidates,
        distinct,
        sampled,
    })
}

impl<'a> Enumeration<'a> {
    /// How many states [`states`](Self::states) yields.
    pub fn len(&self) -> usize {
        self.selected.len()
    }

    pub fn is_empty(&self) -> bool {
        self.selected.is_empty()
    }

    /// As [`states`](Self::states), each with its effective key; a state's files are built only
    /// when `build(key)` says so (a caller that has checked a state of that key already needs no
    /// copy of its files).
    pub fn states_keyed<'s>(
        &'s self,
        mut build: impl FnMut(u64) -> bool + 's,
    ) -> impl Iterator<Item = KeyedState> + 's {
        let mut replay = Replay::new(self.start, self.log, &self.model);
        let mut acks = AckParser::default();
        let mut ack_at = 0usize;
        self.selected.iter().map(move |&(cut, variant, hash)| {
            replay.advance_to(cut);
            while let Some(op) = self.log.ops.get(ack_at) {
                if op.seq > cut {
                    break;
                }
                acks.feed(op);
                ack_at += 1;
            }
            let (effective, files) = replay.effective(variant, &mut build);
            KeyedState {
                built: files.is_some(),
                effective,
                state: CrashState {
                    cut: Cut { after: cut },
                    variant,
                    hash,
                    files: files.unwrap_or_default(),
                    acks: acks.acks.clone(),
                },
            }
        })
    }

    /// Builds the selected states in cut order, one at a time.
    pub fn states(&self) -> impl Iterator<Item = CrashState> + '_ {
        let mut replay = Replay::new(self.start, self.log, &self.model);
        let mut acks = AckParser::default();
        let mut ack_at = 0usize;
        self.selected.iter().map(move |&(cut, variant, hash)| {
            replay.advance_to(cut);
            while let Some(op) = self.log.ops.get(ack_at) {
                if op.seq > cut {
                    break;
                }
                acks.feed(op);
                ack_at += 1;
            }
            CrashState {
                cut: Cut { after: cut },
                variant,
                hash,
                files: replay.materialize(variant),
                acks: acks.acks.clone(),
            }
        })
    }
}
