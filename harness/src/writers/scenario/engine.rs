//! What every scenario shares beyond the trial's processes (`trial::children`): writer loops on
//! plain connections, the scenario's context (variant, seed, starting database), and what a
//! scenario's trial found (`Ending`), handed to the one row builder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use torture_workloads::Workload;

use crate::faults::kill_point::KillPoint;
use crate::options::RunOptions;
use crate::seed;
use crate::trial::children::SlotFiles;
use crate::trial::evidence::{self, Snapshot};
use crate::trial::record::{self, Found, Judged, Pragmas, Trial};
use crate::verify::oracle::Verification;
use crate::verify::outcome::{Outcome, TrialRecord, Verdict};
use crate::verify::verdict::Fault;

use super::Variant;

/// Writer id used on the error channel for the backup process (scenario 4).
pub(crate) const BACKUP_ID: u32 = 9999;

/// The crash-state counts of a recorded trial, for its row ([`Ending::recorded`]; `power.rs` fills it).
#[derive(Clone, Debug)]
pub(crate) struct StateCounts {
    /// Commits acknowledged before the worst state's cut: the row's `acked_commits`.
    pub acked: u64,
    pub crash_states: u64,
    pub damaged_states: u64,
    pub cuts_in_checkpoint: u64,
    /// The worst state's verdict, as the states were judged one by one (a scenario's own check of
    /// a second file may judge differently from the database's promise).
    pub verdict: Verdict,
}

/// Named numbers a trial measured, beyond its row: summed over trials for docs/findings.md's tables.
pub(crate) type Metrics = BTreeMap<String, u64>;

pub(crate) use crate::process::fork_child;
pub(crate) use crate::trial::children::{word, Children, Env, Tally};
pub(crate) use crate::verify::sqlite_error::{extended_name as code_name, primary};
pub(crate) use crate::writers::workload::{
    commit_loop, never, open_writer, writer_process, WriterSpec,
};

/// Copies the starting database and forks `processes` writer processes of `threads` connections each
/// (writers `p * threads + t`), committing until killed; `kill_point` arms the ack board.
pub(crate) fn start_writers<'a>(
    ctx: &Ctx<'a>,
    processes: u32,
    threads: u32,
    kill_point: Option<KillPoint>,
) -> Result<Children<'a>, String> {
    ctx.fresh_database()?;
    let mut run = Children::new(
        ctx.files,
        processes * threads,
        kill_point,
        ctx.opts.trial_timeout,
    )?;
    for p in 0..processes {
        let spec = WriterSpec {
            id: p * threads,
            ..ctx.writer_spec()
        };
        if let Err(e) = run.spawn(&[], |env| {
            writer_process(env, &spec, threads, &never);
            0
        }) {
            run.stop_all();
            return Err(e);
        }
    }
    Ok(run)
}

/// Everything a scenario's trial needs from the run.
pub(crate) struct Ctx<'a> {
    pub opts: &'a RunOptions,
    pub files: &'a SlotFiles,
    pub index: u64,
    pub seed: u64,
    pub variant: &'a Variant,
    pub workload: Workload,
    pub sqlite_version: &'a str,
    pub started: Instant,
}

impl Ctx<'_> {
    /// An RNG for a scenario's own draws (streams 40.. stay clear of the core's).
    pub fn rng(&self, stream: u64) -> rand_chacha::ChaCha8Rng {
        seed::rng_for(self.seed, 40 + stream)
    }

    pub fn kill_point(&self) -> KillPoint {
        self.opts
            .kill
            .draw(&mut seed::rng_for(self.seed, seed::KILL_STREAM))
    }

    pub fn db(&self) -> &Path {
        &self.files.db
    }

    /// Writer 0 of this trial: the variant's pragmas, the run's workload and commit cap.
    pub fn writer_spec(&self) -> WriterSpec<'_> {
        WriterSpec {
            db: self.db(),
            profile: &self.variant.profile,
            workload: self.workload,
            trial_seed: self.seed,
            id: 0,
            max_commits: self.opts.max_commits,
            crash_at: None,
        }
    }

    /// This trial's identity columns, with `fault` as the `fault` column.
    pub fn trial<'f>(&'f self, fault: &'f str) -> Trial<'f> {
        Trial {
            iteration: self.index,
            seed: self.seed,
            profile: &self.variant.profile.name,
            connections: self.variant.profile.connections,
            processes: self.variant.profile.processes,
            workload: self.workload.name(),
            fault,
            sqlite_version: self.sqlite_version,
            started: self.started,
        }
    }

    /// The row of a trial whose setup failed before any child ran.
    pub fn setup_failed(&self, fault: &'static str, e: String) -> (TrialRecord, Metrics) {
        let mut end = Ending::new(fault);
        end.setup_error = Some(e);
        record(self, None, end)
    }

    /// A scratch path of this trial next to the database (`trial.db` → `trial.<name>`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.files.dir.join(format!("trial.{name}"))
    }

    /// Removes the database, its sidecars and every scratch file of the previous trial.
    pub fn clear(&self) {
        for suffix in crate::engine::SIDECARS {
            let _ = std::fs::remove_file(crate::engine::with_suffix(self.db(), suffix));
        }
        for name in ["backup.db", "deleted", "start.tmp", "ops.log"] {
            let base = self.path(name);
            for suffix in crate::engine::SIDECARS {
                let _ = std::fs::remove_file(crate::engine::with_suffix(&base, suffix));
            }
        }
        let _ = std::fs::remove_dir_all(self.path("deleted"));
    }

    /// Copies this variant's starting database (made once per slot: schema, page size, WAL
    /// persisted) to the trial's path.
    pub fn fresh_database(&self) -> Result<(), String> {
        self.clear();
        let template = self.template()?;
        std::fs::copy(&template, self.db())
            .map(drop)
            .map_err(|e| format!("copying the starting database: {e}"))
    }

    /// The starting database of this variant and workload, made on first use. Built under a temporary
    /// name and renamed, so a slot killed half-way never leaves a broken one behind.
    pub fn template(&self) -> Result<PathBuf, String> {
        let name = self.variant.profile.name.replace('/', "-");
        let path = self
            .files
            .dir
            .join(format!("start-{name}-{}.db", self.workload.name()));
        if path.is_file() {
            return Ok(path);
        }
        let tmp = self.path("start.tmp");
        crate::writers::workload::make_starting_database(
            &tmp,
            &self.variant.profile,
            self.workload,
        )
        .map_err(|e| format!("making the starting database: {e}"))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("making the starting database: {e}"))?;
        Ok(path)
    }
}

/// What a scenario's trial found, handed to [`record`].
pub(crate) struct Ending {
    pub verification: Verification,
    /// The `fault` column: `sigkill`, `sigterm`, `none`, …; fixed per variant.
    pub fault: &'static str,
    pub kill_point: String,
    /// The scenario documents damage here (an operator deleting a hot journal, a known corruptor).
    pub expected_damage: bool,
    /// Measurements, appended to `detail` after the variant's parameters.
    pub measures: Vec<String>,
    pub metrics: Metrics,
    /// Files to save as evidence if the trial is not intact: the database the oracle checked, read
    /// before recovery, and extra files (name in the evidence folder, path now).
    pub evidence: Option<(Snapshot, PathBuf)>,
    pub extra_evidence: Vec<(String, PathBuf)>,
    /// Setup failed before anything ran: a lab error.
    pub setup_error: Option<String>,
    /// Children dying of SIGBUS/SIGSEGV are part of what the scenario provokes, not lab errors.
    pub deaths_are_findings: bool,
    /// The fault the verdict table judges: a process crash unless the scenario simulated a power
    /// cut.
    pub judged_as: Fault,
    /// A power cut on the recorder (`power.rs`): the worst state's acks and the crash-state
    /// counts, for the row's last columns.
    pub recorded: Option<StateCounts>,
}

impl Ending {
    pub fn new(fault: &'static str) -> Ending {
        Ending {
            verification: Verification::not_run(),
            fault,
            kill_point: String::new(),
            expected_damage: false,
            measures: Vec::new(),
            metrics: Metrics::new(),
            evidence: None,
            extra_evidence: Vec::new(),
            setup_error: None,
            deaths_are_findings: false,
            judged_as: Fault::Sigkill,
            recorded: None,
        }
    }

    pub fn measure(&mut self, key: &str, value: u64) {
        *self.metrics.entry(key.to_string()).or_default() += value;
    }

    /// Runs the oracle on `db` against `acked`, snapshotting the files recovery may change first.
    pub fn verify(
        &mut self,
        db: &Path,
        workload: Workload,
        acked: &BTreeMap<u32, u64>,
    ) -> Verification {
        let snapshot = Snapshot::before_recovery(db);
        let v = crate::verify::oracle::recover_and_verify(db, workload, acked);
        self.evidence = Some((snapshot, db.to_path_buf()));
        v
    }
}

/// Builds the trial's CSV row from what the scenario found, judges it, and saves evidence for a
/// trial that is not intact. Also returns the metrics, with the outcome counted.
pub(crate) fn record(
    ctx: &Ctx<'_>,
    run: Option<&Children<'_>>,
    mut end: Ending,
) -> (TrialRecord, Metrics) {
    let profile = &ctx.variant.profile;
    let (sqlite_errors, mut lab) = match run {
        Some(r) => reported_errors(r),
        None => (Vec::new(), Vec::new()),
    };
    if let Some(r) = run {
        lab.extend(r.lab.iter().cloned());
        if end.deaths_are_findings {
            end.measures.extend(r.deaths.iter().cloned());
            if !r.deaths.is_empty() {
                end.measure("writer_died_of_a_signal", 1);
            }
        } else {
            lab.extend(r.deaths.iter().cloned());
        }
        if r.timed_out {
            lab.push("trial timeout".into());
        }
    }
    if let Some(e) = &end.setup_error {
        lab.insert(0, e.clone());
    }
    let pragmas = match run {
        Some(r) => Pragmas::read_back(
            profile,
            r.events.in_force.as_ref(),
            &r.events.disagreeing_writers,
            "unknown: no writer read its pragmas back",
        ),
        None => Pragmas::read_back(
            profile,
            None,
            &[],
            "unknown: no writer read its pragmas back",
        ),
    };
    let v = end.verification.clone();
    let outcome = record::outcome_of(v.outcome, &lab);
    // Most scenarios are a process crash (SIGKILL, or a shutdown cut short): "durable across
    // application crashes regardless of the synchronous setting or journal mode", except OFF and
    // MEMORY, which the core table already treats as expected. A power cut follows the
    // synchronous matrix instead (the pool's `-power` variants: the run's power-loss model).
    let judged = Judged {
        fault: end.judged_as,
        hardware_as_documented: end.judged_as != Fault::PowerLoss
            || ctx.opts.faults.hardware_as_documented(),
        expected_damage: end.expected_damage,
    };
    let verdict = match &end.recorded {
        // The worst crash state's verdict, as the states were judged one by one.
        Some(s) if outcome == v.outcome => s.verdict,
        _ => record::verdict_of(outcome, &pragmas, judged),
    };
    let mut parts = vec![ctx.variant.params.clone()];
    parts.extend(end.measures.iter().cloned());
    if !sqlite_errors.is_empty() {
        parts.push(format!("app saw: {}", sqlite_errors.join(" | ")));
    }
    if !v.detail.is_empty() {
        parts.push(v.detail.clone());
    }
    if !lab.is_empty() {
        parts.push(format!("lab: {}", lab.join("; ")));
    }
    let (mut acked, busy) = match run {
        Some(r) => (r.events.acks_total, r.events.busy),
        None => (0, 0),
    };
    if let Some(s) = &end.recorded {
        // Only what was acknowledged before the worst state's cut was acknowledged at that power
        // cut.
        acked = s.acked;
    }
    let mut rec = ctx.trial(end.fault).row(Found {
        outcome,
        verdict,
        pragmas,
        kill_point: end.kill_point.clone(),
        acked_commits: acked,
        recovered_commits: v.recovered_commits,
        busy_errors: busy,
        detail: parts.join("; "),
    });
    if let Some(s) = &end.recorded {
        rec.crash_states = s.crash_states;
        rec.damaged_states = s.damaged_states;
        rec.cuts_in_checkpoint = s.cuts_in_checkpoint;
    }
    if outcome != Outcome::Intact {
        if let Some((mut snapshot, db)) = end.evidence.take() {
            match evidence::save(
                &ctx.opts.out_dir.join("failures"),
                &mut snapshot,
                &db,
                &rec,
                profile,
                &ctx.opts.spec,
                None,
            ) {
                Ok(dir) => {
                    for (name, path) in &end.extra_evidence {
                        let _ = std::fs::copy(path, dir.join(name));
                    }
                }
                Err(e) => rec.detail.push_str(&format!("; evidence not saved: {e}")),
            }
        }
    }
    end.measure("acked", acked);
    end.measure("recovered", v.recovered_commits);
    end.measure("busy", busy);
    end.measure(&format!("outcome:{}", outcome.as_str()), 1);
    end.measure(&format!("verdict:{}", verdict.as_str()), 1);
    (rec, end.metrics)
}

/// SQLite errors the children reported (findings), and other errors (lab problems).
fn reported_errors(run: &Children<'_>) -> (Vec<String>, Vec<String>) {
    let mut sqlite = Vec::new();
    let mut lab = Vec::new();
    for (w, code, text) in &run.events.errors {
        let who = if *w == BACKUP_ID {
            "backup".to_string()
        } else {
            format!("writer {w}")
        };
        let line = format!("{who}: {code}: {text}");
        if code.starts_with("SQLITE_") {
            sqlite.push(line);
        } else {
            lab.push(line);
        }
    }
    (sqlite, lab)
}

/// The size of `path` in bytes, 0 if it does not exist.
pub(crate) fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A rollback journal that recovery would play back: non-empty and starting with the journal magic.
pub(crate) fn hot_journal(db: &Path) -> bool {
    const MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
    std::fs::read(crate::engine::with_suffix(db, "-journal"))
        .map(|b| b.len() >= 8 && b[..8] == MAGIC)
        .unwrap_or(false)
}

/// Whether the file's header says WAL (file format versions 2/2 at bytes 18-19).
pub(crate) fn header_says_wal(db: &Path) -> Option<bool> {
    let bytes = std::fs::read(db).ok()?;
    (bytes.len() >= 20).then(|| bytes[18] == 2 && bytes[19] == 2)
}

/// A fixed-size window of acknowledgements for scenarios whose effect needs a longer run than the
/// run's `--kill-after` gives (checkpoints, backups): K uniform in `lo..=hi`, then `delay`.
pub(crate) fn draw_acks(
    rng: &mut rand_chacha::ChaCha8Rng,
    lo: u64,
    hi: u64,
    delay_us: u64,
) -> KillPoint {
    use rand::RngExt;
    KillPoint::AfterAcks {
        acks: rng.random_range(lo..=hi),
        delay: Duration::from_micros(rng.random_range(0..=delay_us)),
    }
}

/// Words for `detail`: `failed_txns SQLITE_BUSY=12 SQLITE_IOERR=1`, or nothing.
pub(crate) fn failed_codes(run: &Children<'_>, end: &mut Ending, label: &str) {
    let codes = run.tally.codes(word::FAIL);
    for (name, n) in &codes {
        end.measure(&format!("{label}:{name}"), *n);
        end.measure(&format!("trials_with:{name}"), 1);
    }
    if !codes.is_empty() {
        end.measures.push(format!(
            "{label} {}",
            codes
                .iter()
                .map(|(c, n)| format!("{c}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test helpers: run options for a scenario run in a scratch folder, and a slot's files.

    use super::*;
    use clap::Parser;

    /// One scratch run: options as `torture` would validate them, and a slot's files.
    pub struct Lab {
        pub opts: RunOptions,
        pub files: SlotFiles,
        _dir: tempfile::TempDir,
    }

    /// Scenario tests fork; running them one at a time keeps their timing apart.
    pub fn serial() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn lab(extra: &[&str]) -> Lab {
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("torture-scenario-")
                .tempdir_in(base)
                .unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let out = dir.path().join("out");
        let mut args: Vec<String> = vec!["torture".into()];
        if !extra.contains(&"--seed") {
            args.extend(["--seed".into(), "7".into()]);
        }
        args.extend([
            "--out".into(),
            out.display().to_string(),
            "--trial-timeout".into(),
            "8s".into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let cli = crate::cli::Cli::try_parse_from(&args).unwrap();
        let opts = RunOptions::validate(cli.run, args.join(" ")).unwrap();
        let slot = dir.path().join("slot");
        std::fs::create_dir_all(&slot).unwrap();
        let files = SlotFiles::new(slot, 1, Vec::new()).unwrap();
        Lab {
            opts,
            files,
            _dir: dir,
        }
    }

    impl Lab {
        /// Runs `n` trials of variant `variant` of `scenario` (indices chosen so the variant is the
        /// one named), returning their rows and metrics.
        pub fn run(&self, scenario: &str, variant: &str, n: u64) -> Vec<(TrialRecord, Metrics)> {
            let sc = super::super::find(scenario).expect("scenario");
            let v = sc
                .variants
                .iter()
                .position(|x| x.name == variant)
                .unwrap_or_else(|| panic!("no variant {variant} in {scenario}"))
                as u64;
            let k = sc.variants.len() as u64;
            (0..n)
                .map(|i| {
                    let once = || {
                        super::super::run_measured(
                            &self.opts,
                            scenario,
                            v + i * k,
                            &self.files,
                            rusqlite::version(),
                        )
                    };
                    let row = once();
                    // libtest runs tests on threads, so these trials fork from a multi-threaded
                    // process: a child can inherit a lock another test's thread held at that
                    // instant and hang until the trial timeout. The lab's own slots are
                    // single-threaded when they fork, so this is the test harness's hazard, not
                    // the lab's: such a trial is run once more, and said so.
                    if row.0.outcome == Outcome::WorkerError && row.0.detail.contains("timeout") {
                        eprintln!(
                            "{scenario}/{variant} trial {i}: timed out in the test process, run again: {}",
                            row.0.detail
                        );
                        return once();
                    }
                    row
                })
                .collect()
        }
    }

    /// Rows that are neither intact nor lab errors.
    pub fn damaged(rows: &[(TrialRecord, Metrics)]) -> usize {
        rows.iter().filter(|(r, _)| r.outcome.is_damage()).count()
    }

    /// Fails the test with every row's detail when a row is a worker error.
    pub fn no_lab_errors(rows: &[(TrialRecord, Metrics)]) {
        for (r, _) in rows {
            assert_ne!(
                r.outcome,
                Outcome::WorkerError,
                "{}: {}",
                r.profile,
                r.detail
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_by_their_extended_code_when_it_tells_more() {
        let e = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert_eq!(code_name(&e(rusqlite::ffi::SQLITE_BUSY)), "SQLITE_BUSY");
        assert_eq!(
            code_name(&e(rusqlite::ffi::SQLITE_IOERR_DELETE_NOENT)),
            "SQLITE_IOERR_DELETE_NOENT"
        );
        assert_eq!(
            code_name(&e(rusqlite::ffi::SQLITE_READONLY_DBMOVED)),
            "SQLITE_READONLY_DBMOVED"
        );
        // An extended code without a name here keeps its number.
        assert_eq!(
            code_name(&e(rusqlite::ffi::SQLITE_IOERR_SEEK)),
            "SQLITE_IOERR(5642)"
        );
        assert_eq!(primary(&e(rusqlite::ffi::SQLITE_IOERR_SEEK)), 10);
    }

    #[test]
    fn the_tally_is_shared_with_a_forked_child() {
        let t = Tally::new().unwrap();
        let pid = fork_child(&[], || {
            t.add(word::CKPTS, 2);
            t.set(word::AUX_PID, 7);
            0
        })
        .unwrap();
        nix::sys::wait::waitpid(pid, None).unwrap();
        assert_eq!((t.get(word::CKPTS), t.get(word::AUX_PID)), (2, 7));
        t.add(word::FAIL + 5, 3);
        assert_eq!(t.codes(word::FAIL), vec![("SQLITE_BUSY", 3)]);
    }
}
