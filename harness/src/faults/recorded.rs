//! Power loss for the built-in writers on the file-operation recorder (`torture-preload`, issue 13):
//! record once, crash everywhere.
//!
//! The writers are forked, not executed, so the recorder linked into this binary is turned on in
//! each writer right after its fork ([`start_in_writer`]); the bundled SQLite's file operations
//! then go through its hooks, in one total order across every process and thread of the trial.
//! Each commit is acknowledged on a descriptor the recorder watches (`TORTURE_FAULTFS_ACKFD`, a
//! `/dev/null`), right after COMMIT returns, so the log orders acks and file operations together.
//! After the run, [`check_recording`] enumerates the crash states of the log (every sync boundary
//! × keep/lose/tear, a seeded sample past `--max-states`), checks each with the oracle on a scratch
//! copy, and keeps the worst one for the trial's row.

use std::collections::BTreeMap;
use std::os::fd::{IntoRawFd, RawFd};
use std::path::{Path, PathBuf};

use torture_preload::{
    enumerate, env, read_log, wal_checkpoints, Coverage, CrashPlan, CrashState, CutPoints,
    KeyedState, Log, Model, OpKind, Variant, Writer,
};
use torture_workloads::Workload;

use crate::verify::oracle;
use crate::verify::outcome::{Outcome, Verdict};

/// Where a trial's recording lives, fixed before the writers fork.
#[derive(Clone, Debug)]
pub struct RecordingPlan {
    /// The recorded folder: the trial database and its sidecars, nothing else.
    pub dir: PathBuf,
    /// The log, outside `dir` (`<log>.lock` beside it).
    pub log: PathBuf,
    /// Seeds SQLite's PRNG (WAL salts, journal nonces) and what the process reads for randomness.
    pub seed: u64,
    /// `TORTURE_FAULTFS_FAIL_AT` (io-error, disk-full): the recorder fails this operation.
    pub fail_at: Option<String>,
}

impl RecordingPlan {
    /// The recording of a slot: `slot_dir/rec/` and `slot_dir/faultfs.log`.
    pub fn in_slot(slot_dir: &Path, seed: u64) -> RecordingPlan {
        RecordingPlan {
            dir: slot_dir.join("rec"),
            log: slot_dir.join("faultfs.log"),
            seed,
            fail_at: None,
        }
    }

    /// Empties the folder, removes the log and its lock, and copies `template` in as `db_name`.
    pub fn prepare(&self, template: &Path, db_name: &str) -> Result<PathBuf, String> {
        let _ = std::fs::remove_dir_all(&self.dir);
        for p in [self.log.clone(), lock_path(&self.log)] {
            let _ = std::fs::remove_file(p);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("creating {}: {e}", self.dir.display()))?;
        let db = self.dir.join(db_name);
        std::fs::copy(template, &db)
            .map(drop)
            .map_err(|e| format!("copying the starting database: {e}"))?;
        Ok(db)
    }
}

fn lock_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// In a forked writer, before it opens the database: seeds SQLite's PRNG, opens the ack
/// descriptor and turns the recorder on. Returns the ack descriptor ([`log_ack`]). Each writer
/// process (`process_index`) draws its own PRNG stream, so two processes never pick the same salts.
pub fn start_in_writer(plan: &RecordingPlan, process_index: u32) -> Result<RawFd, String> {
    seed_sqlite_prng(((plan.seed as u32) ^ process_index.wrapping_mul(0x9E37_79B9)) | 1);
    let ack = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("opening the ack descriptor: {e}"))?
        .into_raw_fd();
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let (dir, log, fd, seed) = (
        text(&plan.dir),
        text(&plan.log),
        ack.to_string(),
        plan.seed.to_string(),
    );
    let fail_at = plan.fail_at.clone().unwrap_or_default();
    start(&[
        (env::DIR, &dir),
        (env::LOG, &log),
        (env::ACKFD, &fd),
        (env::SEED, &seed),
        (env::FAIL_AT, &fail_at),
    ])?;
    Ok(ack)
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn start(settings: &[(&str, &str)]) -> Result<(), String> {
    torture_preload::start_recording(settings)
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn start(_: &[(&str, &str)]) -> Result<(), String> {
    Err("the file-operation recorder runs on Linux x86_64 and aarch64 only".into())
}

/// SQLite's own PRNG seeded, so the same trial seed writes the same salts and nonces (0: back to
/// the VFS's randomness).
pub fn seed_sqlite_prng(seed: u32) {
    use rusqlite::ffi;
    // SAFETY: SQLITE_TESTCTRL_PRNG_SEED takes (int seed, sqlite3 *db); a null db uses the seed and
    // resets the PRNG at once.
    unsafe {
        ffi::sqlite3_test_control(
            ffi::SQLITE_TESTCTRL_PRNG_SEED,
            seed as std::os::raw::c_int,
            std::ptr::null_mut::<ffi::sqlite3>(),
        );
    }
}

/// Acknowledges commit `seq` of `writer` in the recorder's total order (one `write` to the ack
/// descriptor: `ack SEQ wWRITER`).
pub fn log_ack(fd: RawFd, writer: u32, seq: u64) {
    let line = format!("ack {seq} w{writer}\n");
    // SAFETY: a valid buffer written to our own descriptor.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

/// Marks an event of the lab's own in the recorder's total order (`ack N NAME`: a backup finished,
/// with the acks it had to hold). Not a commit: [`check_recording`] counts only `wK` acks, and
/// hands the marks to `after_check` in each state's acks.
pub fn log_mark(fd: RawFd, name: &str, n: u64) {
    let line = format!("ack {n} {name}\n");
    // SAFETY: a valid buffer written to our own descriptor.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

/// Runs after the oracle on each state: the scratch folder, the state, the database's verification
/// and verdict; returns the state's (a scenario's second file, the backup, judged too).
pub type AfterCheck<'a> = &'a mut dyn FnMut(
    &Path,
    &CrashState,
    oracle::Verification,
    Verdict,
) -> (oracle::Verification, Verdict);

/// Which crash states a recording is checked in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// Power cuts: every sync boundary, cuts inside WAL checkpoints and after WAL resets, each
    /// × keep-all, lose-all, tear-last.
    PowerCut,
    /// A process crash (kill-at-op): every operation boundary, keep-all only (the page cache
    /// survives a SIGKILL).
    ProcessCrash,
}

/// How the crash states of one recording are chosen and judged.
pub struct CheckPlan<'a> {
    pub kind: StateKind,
    pub model: Model,
    /// At most this many distinct states (a seeded sample past it).
    pub max_states: usize,
    pub seed: u64,
    /// `--crash-at FILTER:N`: the one cut just before the N-th matching op, instead of every sync.
    pub fixed: Option<(String, u64)>,
    pub workload: Workload,
    /// The verdict of one state's outcome (the trial's pragmas and the promise the state's variant
    /// is judged by: keep-all is what a process crash leaves).
    pub judge: &'a dyn Fn(Outcome, Variant) -> Verdict,
    /// Runs before the oracle on each state's scratch copy (the crash-in-recovery fault); returns
    /// a note.
    pub before_check: Option<&'a mut dyn FnMut(&Path) -> String>,
    /// See [`AfterCheck`].
    pub after_check: Option<AfterCheck<'a>>,
}

/// What the states of a recording showed: the worst one, and the counts for the row.
pub struct Checked {
    pub outcome: Outcome,
    pub verdict: Verdict,
    /// The worst state's cut: `cut=op SEQ/TOTAL (sync K) VARIANT`.
    pub kill_point: String,
    /// Commits acknowledged before the worst state's cut.
    pub acked_commits: u64,
    pub recovered_commits: u64,
    /// The oracle's words on the worst state, then the counts.
    pub detail: String,
    pub crash_states: u64,
    pub damaged_states: u64,
    pub cuts_in_checkpoint: u64,
    /// WAL checkpoints and WAL resets in the recording.
    pub checkpoints: u64,
    pub wal_resets: u64,
    /// Operations the recorder failed on purpose (`TORTURE_FAULTFS_FAIL_AT`).
    pub injected_ops: u64,
    /// The worst state (its files before recovery), for the evidence.
    pub worst: Option<CrashState>,
}

/// `wK` → K; a mark ([`log_mark`]) or an unnamed ack → None.
fn writer_number(w: &Writer) -> Option<u32> {
    match w {
        Writer::Id(id) => id.strip_prefix('w').and_then(|k| k.parse::<u32>().ok()),
        Writer::Pid(_) => None,
    }
}

/// `ack N wK` → writer K's highest acknowledged commit.
fn acked_by_writer(state: &CrashState) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for (w, n) in state.acks.all() {
        if let Some(k) = writer_number(w) {
            let e = out.entry(k).or_insert(0);
            *e = (*e).max(n);
        }
    }
    out
}

/// A variant as rows and evidence name it (`keep-all`, `lose-all`, `tear-last`, `random:…`).
pub fn variant_name(v: Variant) -> String {
    match v {
        Variant::KeepAll => "keep-all".into(),
        Variant::LoseAll => "lose-all".into(),
        Variant::TearLast => "tear-last".into(),
        Variant::Random { seed } => format!("random:{seed:016x}"),
    }
}

/// `cut=op SEQ/TOTAL (sync K) VARIANT`, as `torture exec --fault` names a cut.
pub fn cut_name(log: &Log, state: &CrashState) -> String {
    CutNames::new(log).of(state)
}

/// [`cut_name`] for many states of one log: the durable syncs' positions found once, each
/// state's count by binary search (a trial of the README's writer names ~6,000 states).
pub struct CutNames {
    total: u64,
    syncs: Vec<u64>,
}

impl CutNames {
    pub fn new(log: &Log) -> CutNames {
        CutNames {
            total: log.ops.last().map_or(0, |o| o.seq),
            syncs: log
                .ops
                .iter()
                .filter(|o| {
                    o.errno == 0 && matches!(&o.kind, OpKind::Sync { how, .. } if how.is_durable())
                })
                .map(|o| o.seq)
                .collect(),
        }
    }

    pub fn of(&self, state: &CrashState) -> String {
        // Ops are in seq order: the syncs at or before the cut.
        let syncs = self.syncs.partition_point(|&s| s <= state.cut.after);
        format!(
            "cut=op {}/{} (sync {syncs}) {}",
            state.cut.after,
            self.total,
            variant_name(state.variant)
        )
    }
}

/// WAL resets in a log: a write at offset 0 of a `-wal` after the first (a new WAL header, the log
/// restarted after a complete checkpoint).
pub fn wal_resets(log: &Log) -> usize {
    let headers = log
        .ops
        .iter()
        .filter(|o| {
            o.errno == 0
                && matches!(&o.kind, OpKind::Write { path, offset: 0, .. }
                    if path.as_os_str().as_encoded_bytes().ends_with(b"-wal"))
        })
        .count();
    headers.saturating_sub(1)
}

/// How bad a crash state is, compared in order: its verdict's severity, whether anything was
/// acknowledged before it, its outcome, its acknowledged commits. A failure after a promise tells
/// more than one before anything was promised (a DuckDB file torn before its first sync, 0 acks,
/// would otherwise hide a later lost commit as the trial's example); among equals the one with the
/// most acknowledged, and then the first.
pub type WorstRank = (u8, bool, Outcome, u64);

pub fn worst_rank(verdict: Verdict, outcome: Outcome, acked: u64) -> WorstRank {
    (verdict.severity(), acked > 0, outcome, acked)
}

/// What a subject's check made of one crash state ([`CrashStateCheck`]).
pub struct Judged<F> {
    pub outcome: Outcome,
    pub verdict: Verdict,
    /// Commits acknowledged before the cut, as the subject counts them (the worst state is ranked
    /// by them: [`WorstRank`]).
    pub acked: u64,
    /// The subject's own findings, kept for the worst state.
    pub found: F,
}

/// A subject's check of one crash state, the parameter of the one crash-state loop ([`sweep`]):
/// the built-in writers' and the scenarios' oracle on a scratch copy ([`check_recording`]), a
/// user's program's check (`writers/program/recorded.rs`).
pub trait CrashStateCheck {
    type Found;
    /// Checks and judges `state`, named `cut` (`cut=op SEQ/TOTAL (sync K) VARIANT`). Its files
    /// are empty when it was not built ([`Sweep::build`]); the check may take them. `Err` is the
    /// lab's own failure (a scratch folder it cannot write): the sweep stops with it.
    fn check(&mut self, state: &mut KeyedState, cut: &str) -> Result<Judged<Self::Found>, String>;
}

/// Which crash states of a recording are checked, for every subject alike.
pub struct Sweep<'a> {
    /// The cuts and variants. Sync cuts with a `max_states` are chosen by [`choose_cuts`] (a
    /// seeded sample, the cuts inside WAL checkpoints and after WAL resets kept, the end always).
    pub crash: CrashPlan,
    /// `--crash-at FILTER:N`: the one cut just before the N-th matching op, instead.
    pub fixed: Option<(String, u64)>,
    /// A damaged power-cut state after a failed directory fsync that SQLite ignores by design is
    /// judged expected ([`excuse_after_failed_directory_sync`]); false for another engine.
    pub excuse_ignored_dir_syncs: bool,
    /// States keyed by what recovery reads ([`KeyedState`]): a state's files are built only when
    /// this says so of its effective key. None: every state is built.
    pub build: Option<&'a dyn Fn(u64) -> bool>,
}

/// One checked state as the loop judged it (after the directory-sync excuse).
#[derive(Clone, Copy, Debug)]
pub struct StateMark {
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub in_checkpoint: bool,
    /// Judged expected after an ignored directory-sync failure.
    pub excused: bool,
}

/// The worst state of a sweep ([`WorstRank`]).
pub struct Worst<F> {
    /// Its place among the states checked.
    pub index: usize,
    pub rank: WorstRank,
    /// `cut=op SEQ/TOTAL (sync K) VARIANT`.
    pub cut: String,
    /// Its files (empty if it was not built).
    pub state: KeyedState,
    /// Its verdict is the one after the excuse.
    pub judged: Judged<F>,
}

/// What the one crash-state loop saw: every state's mark, the worst state, the counts.
pub struct Swept<F> {
    pub marks: Vec<StateMark>,
    pub worst: Option<Worst<F>>,
    /// `every sync`, `sampled syncs`, `every op` or `fixed cut`.
    pub cut_kind: &'static str,
    pub cut_points: usize,
    pub candidates: usize,
    pub distinct: usize,
    pub sampled: bool,
    /// WAL checkpoints and WAL resets in the recording.
    pub checkpoints: usize,
    pub wal_resets: usize,
    /// Operations the recorder failed on purpose (`TORTURE_FAULTFS_FAIL_AT`).
    pub injected_ops: u64,
    /// The cut asked for and not reached.
    pub notes: Vec<String>,
}

impl<F> Swept<F> {
    pub fn damaged(&self) -> usize {
        self.marks.iter().filter(|m| m.outcome.is_damage()).count()
    }

    pub fn in_checkpoint(&self) -> usize {
        self.marks.iter().filter(|m| m.in_checkpoint).count()
    }

    pub fn excused(&self) -> usize {
        self.marks.iter().filter(|m| m.excused).count()
    }

    /// `3 intact, 1 lost-commit` (or `none checked`).
    pub fn counts(&self) -> String {
        let mut counts: BTreeMap<Outcome, u64> = BTreeMap::new();
        for m in &self.marks {
            *counts.entry(m.outcome).or_default() += 1;
        }
        if counts.is_empty() {
            return "none checked".into();
        }
        let parts: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
        parts.join(", ")
    }
}

/// The one crash-state loop: chooses the recording's cuts ([`Sweep`]), enumerates its distinct
/// states, has `check` check and judge each, excuses what an ignored directory-sync failure
/// explains, and keeps the worst. Every subject's power loss, kill-at-op, io-error and disk-full
/// states go through it; only the check differs.
pub fn sweep<C: CrashStateCheck>(
    start: &torture_preload::Snapshot,
    log: &Log,
    plan: &Sweep<'_>,
    check: &mut C,
) -> Result<Swept<C::Found>, String> {
    let checkpoints = wal_checkpoints(log);
    let mut notes = Vec::new();
    let mut crash = plan.crash.clone();
    let mut cut_kind = match crash.cuts {
        CutPoints::EveryOp => "every op",
        CutPoints::EverySync => "every sync",
        CutPoints::Ops(_) => "fixed cut",
    };
    match &plan.fixed {
        Some((filter, n)) => {
            cut_kind = "fixed cut";
            let f: torture_preload::OpFilter = filter.parse()?;
            crash.cuts = match f.nth(log, *n) {
                Some(seq) => CutPoints::Ops(vec![seq - 1]),
                None => {
                    notes.push(format!(
                        "--crash-at {filter}:{n} not reached (the recording has fewer); cut at its end"
                    ));
                    CutPoints::Ops(vec![log.ops.last().map_or(0, |o| o.seq)])
                }
            };
        }
        None => {
            if let (CutPoints::EverySync, Some(max)) = (&crash.cuts, crash.max_states) {
                let (cuts, sampled) = choose_cuts(log, &checkpoints, max, crash.seed);
                if sampled {
                    cut_kind = "sampled syncs";
                }
                crash.cuts = CutPoints::Ops(cuts);
            }
        }
    }
    let e = enumerate(start, log, &crash)?;
    let ignored_dir_syncs = if plan.excuse_ignored_dir_syncs {
        ignored_directory_sync_failures(log)
    } else {
        Vec::new()
    };
    let names = CutNames::new(log);
    let states: Box<dyn Iterator<Item = KeyedState> + '_> = match plan.build {
        Some(build) => Box::new(e.states_keyed(build)),
        None => Box::new(e.states().map(|state| KeyedState {
            effective: state.hash,
            built: true,
            state,
        })),
    };
    let mut out = Swept {
        marks: Vec::with_capacity(e.len()),
        worst: None,
        cut_kind,
        cut_points: e.cut_points,
        candidates: e.candidates,
        distinct: e.distinct,
        sampled: e.sampled,
        checkpoints: checkpoints.len(),
        wal_resets: wal_resets(log),
        injected_ops: log.ops.iter().filter(|o| o.injected).count() as u64,
        notes,
    };
    for mut state in states {
        let cut = names.of(&state.state);
        let mut judged = check.check(&mut state, &cut)?;
        let (after, variant) = (state.state.cut.after, state.state.variant);
        let excuse =
            excuse_after_failed_directory_sync(&ignored_dir_syncs, after, variant, judged.verdict);
        judged.verdict = excuse.unwrap_or(judged.verdict);
        out.marks.push(StateMark {
            outcome: judged.outcome,
            verdict: judged.verdict,
            in_checkpoint: checkpoints.iter().any(|c| c.contains(state.state.cut)),
            excused: excuse.is_some(),
        });
        let rank = worst_rank(judged.verdict, judged.outcome, judged.acked);
        if out.worst.as_ref().is_none_or(|w| rank > w.rank) {
            out.worst = Some(Worst {
                index: out.marks.len() - 1,
                rank,
                cut,
                state,
                judged,
            });
        }
    }
    Ok(out)
}

/// Reads the recording in `rec` (its starting snapshot `start`), builds its crash states in
/// `scratch` (emptied for each) and checks each with the oracle on `scratch/<db_name>`.
pub fn check_recording(
    start: &torture_preload::Snapshot,
    log_path: &Path,
    scratch: &Path,
    db_name: &str,
    plan: CheckPlan<'_>,
) -> Result<Checked, String> {
    // Seconds of CPU: never at the slot's real-time priority.
    crate::process::at_normal_priority(|| check_states(start, log_path, scratch, db_name, plan))
}

/// The built-in writers' and the scenarios' check of a crash state: its files written to the
/// scratch folder, the oracle on the database there, the subject's verdict, then `after_check`.
struct OracleCheck<'p, 'a> {
    scratch: ScratchDir<'p>,
    db: PathBuf,
    plan: &'p mut CheckPlan<'a>,
}

impl CrashStateCheck for OracleCheck<'_, '_> {
    /// The oracle's verification, and the note `before_check` made.
    type Found = (oracle::Verification, String);

    fn check(&mut self, keyed: &mut KeyedState, _cut: &str) -> Result<Judged<Self::Found>, String> {
        let state = &keyed.state;
        self.scratch.write(&state.files).map_err(|err| {
            format!(
                "writing a crash state to {}: {err}",
                self.scratch.dir.display()
            )
        })?;
        let note = match self.plan.before_check.as_mut() {
            Some(f) => f(&self.db),
            None => String::new(),
        };
        let acked = acked_by_writer(state);
        let v = oracle::recover_and_verify(&self.db, self.plan.workload, &acked);
        let verdict = (self.plan.judge)(v.outcome, state.variant);
        let (v, verdict) = match self.plan.after_check.as_mut() {
            Some(f) => f(self.scratch.dir, state, v, verdict),
            None => (v, verdict),
        };
        Ok(Judged {
            outcome: v.outcome,
            verdict,
            acked: state
                .acks
                .all()
                .filter(|(w, _)| writer_number(w).is_some())
                .count() as u64,
            found: (v, note),
        })
    }
}

fn check_states(
    start: &torture_preload::Snapshot,
    log_path: &Path,
    scratch: &Path,
    db_name: &str,
    mut plan: CheckPlan<'_>,
) -> Result<Checked, String> {
    let log = read_log(log_path).map_err(|e| format!("reading the recorder's log: {e:?}"))?;
    if log.coverage() != Coverage::FileOps {
        return Err(format!(
            "the recorder saw no file operation of the writers ({:?}): the binary's libc calls do not reach its hooks",
            log.coverage()
        ));
    }
    let mut crash = CrashPlan {
        cuts: if plan.kind == StateKind::ProcessCrash {
            CutPoints::EveryOp
        } else {
            CutPoints::EverySync
        },
        max_states: Some(plan.max_states),
        seed: plan.seed,
        ..CrashPlan::every_sync(plan.model.clone())
    };
    if plan.kind == StateKind::ProcessCrash {
        crash.variants = vec![Variant::KeepAll];
    }
    let sweep_plan = Sweep {
        crash,
        fixed: plan.fixed.clone(),
        excuse_ignored_dir_syncs: true,
        build: None,
    };
    let fixed = plan.fixed.is_some();
    let mut oracle_check = OracleCheck {
        scratch: ScratchDir::new(scratch),
        db: scratch.join(db_name),
        plan: &mut plan,
    };
    let s = sweep(start, &log, &sweep_plan, &mut oracle_check)?;
    let mut checked = Checked {
        outcome: Outcome::Intact,
        verdict: Verdict::Ok,
        kill_point: String::new(),
        acked_commits: 0,
        recovered_commits: 0,
        detail: String::new(),
        crash_states: s.marks.len() as u64,
        damaged_states: s.damaged() as u64,
        cuts_in_checkpoint: s.in_checkpoint() as u64,
        checkpoints: s.checkpoints as u64,
        wal_resets: s.wal_resets as u64,
        injected_ops: s.injected_ops,
        worst: None,
    };
    let worst_hash = s
        .worst
        .as_ref()
        .map(|w| format!("{:016x}", w.state.state.hash))
        .unwrap_or_default();
    let mut detail = format!(
        "{} crash states ({}, {} cuts, {} candidates, {} distinct{}): {}; {} cut inside one of {} WAL checkpoint(s), {} WAL reset(s); recording: {} ops, {} process(es); worst state {worst_hash}",
        checked.crash_states,
        if fixed { "fixed cut" } else { s.cut_kind },
        s.cut_points,
        s.candidates,
        s.distinct,
        if s.sampled { ", sampled" } else { "" },
        s.counts(),
        checked.cuts_in_checkpoint,
        s.checkpoints,
        s.wal_resets,
        log.ops.last().map_or(0, |o| o.seq),
        log.processes(),
    );
    let excused = s.excused();
    if excused > 0 {
        detail.push_str(&format!(
            "; {excused} damaged power-cut state(s) judged expected: cut after the injected failure of a directory fsync that SQLite ignores by design (os_unix.c unixSync: \"ignore errors on the fsync\" of the directory) and before the next one, so the names it made are not durable and nothing was promised of them"
        ));
    }
    let unsupported: Vec<String> = log.unsupported().map(|u| u.to_string()).collect();
    for n in s.notes.iter().chain(unsupported.iter()) {
        detail.push_str("; ");
        detail.push_str(n);
    }
    let mut worst_detail = String::new();
    if let Some(w) = s.worst {
        let (v, note) = &w.judged.found;
        checked.outcome = w.judged.outcome;
        checked.verdict = w.judged.verdict;
        checked.kill_point = w.cut;
        checked.acked_commits = w.judged.acked;
        checked.recovered_commits = v.recovered_commits;
        worst_detail = [v.detail.as_str(), note.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("; ");
        checked.worst = Some(w.state.state);
    }
    checked.detail = if worst_detail.is_empty() {
        detail
    } else {
        format!("{worst_detail}; {detail}")
    };
    Ok(checked)
}

/// The spans of the recording in which SQLite goes on after an injected failure of a directory
/// fsync it ignores: from that failed sync to the next successful fsync of the same directory
/// (or the end). SQLite ignores the result of the directory fsync it makes after creating a
/// journal (`unixSync`, `UNIXFILE_DIRSYNC`: "ignore errors on the fsync"); the one after deleting
/// a file (`unixDelete`, synchronous=EXTRA) it reports, so a failed directory fsync right after an
/// unlink by the same process opens no span.
pub(crate) fn ignored_directory_sync_failures(log: &torture_preload::Log) -> Vec<(u64, u64)> {
    let mut spans = Vec::new();
    for (i, op) in log.ops.iter().enumerate() {
        let OpKind::Sync {
            is_dir: true,
            path: dir,
            ..
        } = &op.kind
        else {
            continue;
        };
        if !op.injected {
            continue;
        }
        let after_unlink = log.ops[..i]
            .iter()
            .rev()
            .find(|o| o.pid == op.pid && o.tid == op.tid)
            .is_some_and(|o| matches!(o.kind, OpKind::Unlink { .. }));
        if after_unlink {
            continue;
        }
        let end = log.ops[i + 1..]
            .iter()
            .find(|o| {
                !o.injected
                    && o.errno == 0
                    && matches!(&o.kind, OpKind::Sync { is_dir: true, path, how, .. } if path == dir && how.is_durable())
            })
            .map_or(u64::MAX, |o| o.seq);
        spans.push((op.seq, end));
    }
    spans
}

/// A damaged power-cut state cut inside one of `spans` ([`ignored_directory_sync_failures`]):
/// the names SQLite counted on that fsync to make durable never became so — a disk that failed
/// its fsync, not a promise SQLite broke, as with `--lying-disk`. Returns the verdict to use
/// instead of a violation, or None.
pub(crate) fn excuse_after_failed_directory_sync(
    spans: &[(u64, u64)],
    cut: u64,
    variant: Variant,
    verdict: Verdict,
) -> Option<Verdict> {
    let inside = spans.iter().any(|&(from, to)| from <= cut && cut < to);
    (inside && variant != Variant::KeepAll && verdict == Verdict::Violation)
        .then_some(Verdict::Expected)
}

/// The scratch folder a crash state is checked in. Consecutive states share most of their bytes
/// (the database file, often the WAL): a file whose bytes on disk already equal the state's is left
/// alone (compared byte for byte, so whatever the previous check changed is rewritten), the others
/// are written, and every file the state does not have is removed.
struct ScratchDir<'a> {
    dir: &'a Path,
}

impl<'a> ScratchDir<'a> {
    fn new(dir: &'a Path) -> ScratchDir<'a> {
        ScratchDir { dir }
    }

    fn write(&mut self, files: &BTreeMap<PathBuf, Vec<u8>>) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir)?;
        for e in std::fs::read_dir(self.dir)? {
            let e = e?;
            if files.contains_key(&PathBuf::from(e.file_name())) && e.file_type()?.is_file() {
                continue;
            }
            if e.file_type()?.is_dir() {
                std::fs::remove_dir_all(e.path())?;
            } else {
                std::fs::remove_file(e.path())?;
            }
        }
        for (rel, data) in files {
            let p = self.dir.join(rel);
            if std::fs::read(&p).is_ok_and(|on_disk| on_disk == *data) {
                continue;
            }
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, data)?;
        }
        Ok(())
    }
}

/// The cut points of a recording: every sync boundary (just before each effective fsync, and the
/// end), and inside every WAL checkpoint (after its first write to the database file, halfway, and
/// just before the sync that ends it) and just after each WAL reset. When there are more than
/// `max_states` of them, the checkpoint and reset cuts are kept (a seeded sample of at most half
/// the budget) and the sync boundaries sampled to fill it, the end always in: the enumerator then
/// hashes a bounded number of candidates however long the recording. True when sampled.
pub fn choose_cuts(
    log: &Log,
    checkpoints: &[torture_preload::Checkpoint],
    max_states: usize,
    seed: u64,
) -> (Vec<u64>, bool) {
    use rand::RngExt;
    let end = log.ops.last().map_or(0, |o| o.seq);
    let mut syncs: Vec<u64> = log
        .ops
        .iter()
        .filter(|o| o.errno == 0 && matches!(&o.kind, OpKind::Sync { how, .. } if how.is_durable()))
        .map(|o| o.seq - 1)
        .collect();
    let mut inside: Vec<u64> = Vec::new();
    for c in checkpoints {
        inside.extend([c.first, (c.first + c.last) / 2, c.last.saturating_sub(1)]);
    }
    let mut wal_headers = log.ops.iter().filter(|o| {
        o.errno == 0
            && matches!(&o.kind, OpKind::Write { path, offset: 0, .. }
                if path.as_os_str().as_encoded_bytes().ends_with(b"-wal"))
    });
    let _first_header = wal_headers.next();
    inside.extend(wal_headers.map(|o| o.seq));
    inside.sort_unstable();
    inside.dedup();
    // Three variants a cut, about two thirds of them distinct: twice the cuts would be sampled down.
    let budget = (max_states / 2).max(2);
    let sampled = syncs.len() + inside.len() + 1 > budget;
    let mut rng = crate::seed::rng_for(seed, crate::seed::FAULT_STREAM + 3);
    let mut sample = |v: &mut Vec<u64>, keep: usize| {
        if v.len() > keep {
            for i in 0..keep {
                let j = rng.random_range(i..v.len());
                v.swap(i, j);
            }
            v.truncate(keep);
        }
    };
    if sampled {
        sample(&mut inside, budget / 2);
        let room = budget.saturating_sub(inside.len() + 1).max(1);
        sample(&mut syncs, room);
    }
    let mut cuts: Vec<u64> = syncs.into_iter().chain(inside).collect();
    cuts.push(end);
    cuts.sort_unstable();
    cuts.dedup();
    (cuts, sampled)
}

/// The harness's `--crash-at` filter in the recorder's words (`delete` is `unlink` there).
pub fn recorder_filter(harness_filter: &str) -> String {
    match harness_filter.split_once(':') {
        Some(("delete", f)) => format!("unlink:{f}"),
        None if harness_filter == "delete" => "unlink".into(),
        _ => harness_filter.to_string(),
    }
}
