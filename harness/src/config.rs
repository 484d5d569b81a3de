//! The run's settings, typed and checked: one [`RunConfig`] is what trials read and what
//! `OUT/run.json` holds. On disk it keeps the format every version has written ([`RunSpecFile`]:
//! the settings as typed), so `--resume`, `replay` and `merge` read older runs, and reading one
//! checks every field — a hand-edited file gets one line naming the field, never a panic.

use std::time::Duration;

use torture_workloads::{Profile, Workload};

use crate::engine::Engine;
use crate::faults::kill_point::{parse_duration, KillPolicy};
use crate::faults::OpFilter;
use crate::verify::verdict::Fault;
use crate::writers::program::ExecOptions;
use torture_preload::Model;

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// The settings of a run. Built only from a [`RunSpecFile`] (the command line is turned into one
/// first), so a run started here and one read back from `run.json` are checked alike.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RunSpecFile", into = "RunSpecFile")]
pub struct RunConfig {
    pub profiles: Vec<Profile>,
    pub workload: Workload,
    /// A number of trials per profile, or a time budget.
    pub mode: Mode,
    pub seed: u64,
    pub kill: KillPolicy,
    pub trial_timeout: Duration,
    pub max_commits: u64,
    pub partition: Option<Partition>,
    /// Exit 1 on any non-intact trial, not only on violations.
    pub fail_on_any: bool,
    /// The command line, as recorded in failure notes.
    pub command_line: String,
    pub sqlite_version: String,
    pub faults: FaultOptions,
    /// `torture exec`: trials run this program instead of a workload.
    pub exec: Option<ExecOptions>,
    /// `torture scenario run NAME`: trials run this scenario's variants instead of profiles.
    pub scenario: Option<String>,
    /// The engine the trials drive (plain SQLite, or SQLCipher with its key).
    pub engine: Engine,
    /// Set by `torture merge --partial`: what the merged folder lacks.
    pub partial: Option<String>,
    /// Where and when the run started (absent in folders written before they were recorded).
    pub machine: Option<Machine>,
    pub started: Option<String>,
    /// How the windows and the fault filter were spelled, so `run.json` says what was typed.
    spelled: Spelled,
}

/// The user's spelling of settings whose typed form loses it (`2ms..30ms`, `10s`, `write:db:9`).
#[derive(Clone, Debug)]
struct Spelled {
    kill_after: String,
    kill_delay: String,
    trial_timeout: String,
    crash_at: String,
}

/// A usage error: printed as `torture: <message>` and exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl RunConfig {
    /// Checks every field of `file` and types it.
    pub fn new(file: RunSpecFile) -> Result<RunConfig, UsageError> {
        let workload = parse_workload(&file.workload)?;
        let (kill, trial_timeout) =
            parse_kill(&file.kill_after, &file.kill_delay, &file.trial_timeout)?;
        if file.profiles.is_empty() {
            return Err(usage("no profiles; a run has at least one"));
        }
        for p in &file.profiles {
            // Scenario variants are named `scenario/variant`: check the values, and only the
            // name's length.
            if p.name.is_empty() || p.name.len() > 200 {
                return Err(usage("a profile name is empty or over 200 bytes"));
            }
            let values = Profile {
                name: "p".into(),
                ..p.clone()
            };
            values
                .validate()
                .map_err(|e| usage(format!("{}: {e}", p.name)))?;
        }
        let faults = FaultOptions::from_spec(&file)?;
        let mode = Mode::from_spec(&file)?;
        check_plan_size(mode, file.profiles.len())?;
        if file.max_commits == 0 {
            return Err(usage("--max-commits 0 writes nothing; give at least 1"));
        }
        if let Some(p) = file.partition {
            if p.k == 0 || p.k > p.n {
                return Err(usage(format!(
                    "partition {}/{} is not a shard K/N with 1 <= K <= N",
                    p.k, p.n
                )));
            }
            if mode.duration().is_some() {
                return Err(usage(
                    "--partition needs --iterations (a --duration run has no fixed set of trials to split)",
                ));
            }
        }
        let fail_on_any = match file.fail_on.as_str() {
            "any" => true,
            "violation" => false,
            other => return Err(usage(format!("fail_on `{other}`: give violation or any"))),
        };
        Ok(RunConfig {
            profiles: file.profiles,
            workload,
            mode,
            seed: file.seed,
            kill,
            trial_timeout,
            max_commits: file.max_commits,
            partition: file.partition,
            fail_on_any,
            command_line: file.command_line,
            sqlite_version: file.sqlite_version,
            faults,
            exec: file.exec,
            scenario: file.scenario,
            engine: file.engine,
            partial: file.partial,
            machine: file.machine,
            started: file.started,
            spelled: Spelled {
                kill_after: file.kill_after,
                kill_delay: file.kill_delay,
                trial_timeout: file.trial_timeout,
                crash_at: file.crash_at,
            },
        })
    }

    /// Trials in the whole run (all shards): `iterations` of every profile, interleaved. Checked
    /// counts never overflow.
    pub fn total_trials(&self) -> Option<u64> {
        self.mode
            .iterations()
            .map(|n| n.saturating_mul(self.profiles.len() as u64))
    }

    /// Trials this invocation is meant to run: the whole run, or this shard's block of it.
    pub fn planned_trials(&self) -> Option<u64> {
        let total = self.total_trials()?;
        Some(match self.partition {
            Some(p) => {
                let r = p.range(total);
                r.end - r.start
            }
            None => total,
        })
    }

    /// Which profile trial `index` uses: profiles take turns so machine noise hits them alike.
    pub fn profile_of(&self, index: u64) -> &Profile {
        &self.profiles[(index % self.profiles.len() as u64) as usize]
    }
}

impl TryFrom<RunSpecFile> for RunConfig {
    type Error = String;

    fn try_from(file: RunSpecFile) -> Result<RunConfig, String> {
        RunConfig::new(file).map_err(|e| e.0)
    }
}

impl From<RunConfig> for RunSpecFile {
    fn from(c: RunConfig) -> RunSpecFile {
        RunSpecFile {
            profiles: c.profiles,
            workload: c.workload.name().to_string(),
            iterations: c.mode.iterations(),
            duration_secs: c.mode.duration().map(|d| d.as_secs_f64()),
            seed: c.seed,
            kill_after: c.spelled.kill_after,
            kill_delay: c.spelled.kill_delay,
            trial_timeout: c.spelled.trial_timeout,
            max_commits: c.max_commits,
            partition: c.partition,
            fail_on: if c.fail_on_any { "any" } else { "violation" }.to_string(),
            command_line: c.command_line,
            sqlite_version: c.sqlite_version,
            fault: c.faults.fault.as_str().to_string(),
            crash_at: c.spelled.crash_at,
            fault_commits: c.faults.commits,
            sector_size: c.faults.model.sector_size,
            lying_disk: c.faults.model.lying_disk,
            no_powersafe_overwrite: !c.faults.model.powersafe_overwrite,
            crash_recovery: c.faults.crash_recovery,
            max_states: c.faults.max_states,
            exec: c.exec,
            scenario: c.scenario,
            engine: c.engine,
            partial: c.partial,
            op_counter: Some(OP_COUNTER.to_string()),
            machine: c.machine,
            started: c.started,
        }
    }
}

/// What counts the operations of `--crash-at` and of the kill-at-op, io-error and disk-full
/// faults: the file-operation recorder's libc calls. A `run.json` without it was written when the
/// SQLite VFS shim counted SQLite's VFS calls: its op numbers meant other operations.
pub const OP_COUNTER: &str = "recorder";

/// `OUT/run.json` as written: every setting that decides which trials a run makes, as typed, so
/// `--resume` continues exactly the same run and a reader knows how the results were produced. The
/// format every version has written; [`RunConfig`] is its typed, checked form.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpecFile {
    pub profiles: Vec<Profile>,
    pub workload: String,
    /// Trials per profile; `None` for a `--duration` run.
    pub iterations: Option<u64>,
    pub duration_secs: Option<f64>,
    pub seed: u64,
    pub kill_after: String,
    pub kill_delay: String,
    pub trial_timeout: String,
    pub max_commits: u64,
    pub partition: Option<Partition>,
    pub fail_on: String,
    pub command_line: String,
    pub sqlite_version: String,
    #[serde(default = "default_fault")]
    pub fault: String,
    #[serde(default = "default_crash_at")]
    pub crash_at: String,
    #[serde(default = "default_fault_commits")]
    pub fault_commits: u64,
    #[serde(default = "default_sector_size")]
    pub sector_size: u32,
    #[serde(default)]
    pub lying_disk: bool,
    #[serde(default)]
    pub no_powersafe_overwrite: bool,
    #[serde(default)]
    pub crash_recovery: bool,
    /// Power loss: at most this many crash states checked per trial (a seeded sample past it).
    #[serde(default = "default_max_states")]
    pub max_states: u64,
    /// `torture exec`: the program tortured, with its calibrated kill window.
    #[serde(default)]
    pub exec: Option<ExecOptions>,
    /// `torture scenario run NAME`: the scenario run.
    #[serde(default)]
    pub scenario: Option<String>,
    /// The engine the trials drive (plain SQLite, or SQLCipher with its key).
    #[serde(default)]
    pub engine: Engine,
    /// Set by `torture merge --partial`: which shards the merged folder lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    /// What counted the operations (`recorder`: [`OP_COUNTER`]); absent in a run written when
    /// kill-at-op, io-error and disk-full counted SQLite's VFS calls in the shim.
    #[serde(default)]
    pub op_counter: Option<String>,
    /// The machine the run started on, so `torture report` can tell runs of two machines apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
    /// When the run started, UTC (`2026-12-04T13:44:08Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
}

/// The machine a run started on: its host name and how many CPUs it could use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub hostname: String,
    pub cpus: usize,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Machine {
            hostname: if hostname.is_empty() {
                "unknown".to_string()
            } else {
                hostname
            },
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

pub(crate) fn default_fault() -> String {
    "sigkill".into()
}
pub(crate) fn default_crash_at() -> String {
    "any".into()
}
pub(crate) fn default_fault_commits() -> u64 {
    20
}
pub(crate) fn default_sector_size() -> u32 {
    512
}
/// Crash states checked per recorded trial by default, for every subject.
pub const DEFAULT_MAX_STATES: u64 = 64;

pub(crate) fn default_max_states() -> u64 {
    DEFAULT_MAX_STATES
}

/// How op-indexed faults are placed and what a power cut does.
#[derive(Clone, Debug)]
pub struct FaultOptions {
    pub fault: Fault,
    /// Which operations count.
    pub filter: OpFilter,
    /// A fixed operation index; `None` draws it from the trial's seed.
    pub op: Option<u64>,
    /// Commits per writer in an op-indexed trial.
    pub commits: u64,
    /// What a power cut does to the files (the recorder's persistence model).
    pub model: Model,
    /// Crash the first opener mid-recovery before the oracle recovers.
    pub crash_recovery: bool,
    /// Power loss: at most this many crash states checked per trial.
    pub max_states: u64,
}

impl FaultOptions {
    fn from_spec(spec: &RunSpecFile) -> Result<FaultOptions, UsageError> {
        let fault = Fault::parse(&spec.fault).ok_or_else(|| {
            usage(format!(
                "unknown fault `{}`; choose one of: {}",
                spec.fault,
                Fault::ALL.map(|f| f.as_str()).join(", ")
            ))
        })?;
        // Every part written must say something: `::3` or `write::3` is a typo, not "any".
        let parts: Vec<&str> = spec.crash_at.split(':').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.trim().is_empty()) {
            return Err(usage(format!(
                "--crash-at {}: write it KIND:FILE:N (write:db:9), KIND:N (sync:3), KIND:FILE or KIND, with KIND any, write, sync, truncate or delete and FILE any, db, wal or journal",
                spec.crash_at
            )));
        }
        let (filter_text, op) = match spec.crash_at.rsplit_once(':') {
            Some((head, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => {
                let n: u64 = n
                    .parse()
                    .map_err(|_| usage(format!("--crash-at {}: N is too large", spec.crash_at)))?;
                if n == 0 {
                    return Err(usage("--crash-at: N counts from 1"));
                }
                (head.to_string(), Some(n))
            }
            _ => (spec.crash_at.clone(), None),
        };
        let filter: OpFilter = filter_text
            .parse()
            .map_err(|e: String| usage(format!("--crash-at: {e}")))?;
        if matches!(fault, Fault::IoError | Fault::DiskFull) {
            fail_kind(filter).map_err(usage)?;
        }
        if spec.fault_commits == 0 {
            return Err(usage("--fault-commits 0 writes nothing; give at least 1"));
        }
        // Every crash state replays the recording up to its cut: a recording without end (the
        // writers then run until the trial timeout) makes each state cost minutes.
        if spec.fault_commits > MAX_FAULT_COMMITS {
            return Err(usage(format!(
                "--fault-commits {}: at most {MAX_FAULT_COMMITS} (every crash state rebuilds the recording up to its cut); give fewer",
                spec.fault_commits
            )));
        }
        if !(512..=65536).contains(&spec.sector_size) || !spec.sector_size.is_power_of_two() {
            return Err(usage(format!(
                "--sector-size {} is not a power of two from 512 to 65536",
                spec.sector_size
            )));
        }
        if spec.max_states == 0 {
            return Err(usage("--max-states 0 checks nothing; give at least 1"));
        }
        // Every writer of the trial is recorded in one order (the file-operation recorder); a run
        // written when the shim counted SQLite's VFS calls meant other operations.
        if matches!(fault, Fault::KillAtOp | Fault::IoError | Fault::DiskFull)
            && spec.op_counter.as_deref() != Some(OP_COUNTER)
        {
            return Err(usage(format!(
                "this run's --fault {} counted SQLite's VFS calls (the old shim, before op_counter \"{OP_COUNTER}\" in run.json); torture now counts the recorder's libc operations, so its trials cannot be resumed or replayed: start a new run with a new --out",
                fault.as_str()
            )));
        }
        Ok(FaultOptions {
            fault,
            filter,
            op,
            commits: spec.fault_commits,
            crash_recovery: spec.crash_recovery,
            max_states: spec.max_states,
            model: Model {
                sector_size: spec.sector_size,
                lying_disk: spec.lying_disk,
                powersafe_overwrite: !spec.no_powersafe_overwrite,
                ..Model::default()
            },
        })
    }

    /// io-error / disk-full: the recorder's name of the kind of operation that fails.
    pub fn fail_kind(&self) -> &'static str {
        fail_kind(self.filter).unwrap_or("any")
    }

    /// False when the power-loss model breaks an assumption SQLite documents, on request.
    pub fn hardware_as_documented(&self) -> bool {
        !self.model.lying_disk && self.model.powersafe_overwrite
    }
}

/// The recorder's `TORTURE_FAULTFS_FAIL_AT` kind for a `--crash-at` filter: it counts operations
/// of one kind in any file, so a file part is refused (one line naming the fix).
fn fail_kind(filter: OpFilter) -> Result<&'static str, String> {
    use crate::faults::{FileFilter, OpKindFilter};
    if filter.file != FileFilter::Any {
        let kind = OpFilter::new(filter.kind, FileFilter::Any);
        return Err(format!(
            "--crash-at {filter}: io-error and disk-full fail the N-th operation of a kind in any file; drop the file part (e.g. --crash-at {kind}:N)"
        ));
    }
    Ok(match filter.kind {
        OpKindFilter::Any => "any",
        OpKindFilter::Write => "write",
        OpKindFilter::Sync => "sync",
        OpKindFilter::Truncate => "truncate",
        OpKindFilter::Delete => "unlink",
    })
}

/// What bounds a run: a number of trials per profile, or a time budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Iterations(u64),
    Duration(Duration),
}

impl Mode {
    pub fn iterations(self) -> Option<u64> {
        match self {
            Mode::Iterations(n) => Some(n),
            Mode::Duration(_) => None,
        }
    }

    pub fn duration(self) -> Option<Duration> {
        match self {
            Mode::Iterations(_) => None,
            Mode::Duration(d) => Some(d),
        }
    }

    /// From `-n` / `--duration` as typed (`None`: not given), with the command's default count.
    pub(crate) fn from_args(
        iterations: Option<u64>,
        duration: Option<&str>,
        default_iterations: u64,
    ) -> Result<Mode, UsageError> {
        match duration {
            Some(d) => {
                let d = parse_duration(d).map_err(|e| usage(format!("--duration: {e}")))?;
                if d.is_zero() {
                    return Err(usage("--duration 0 runs nothing; give e.g. 90s or 10m"));
                }
                Ok(Mode::Duration(d))
            }
            None => match iterations.unwrap_or(default_iterations) {
                0 => Err(usage("--iterations 0 runs nothing; give at least 1")),
                n => Ok(Mode::Iterations(n)),
            },
        }
    }

    /// From `run.json`.
    fn from_spec(spec: &RunSpecFile) -> Result<Mode, UsageError> {
        match (spec.iterations, spec.duration_secs) {
            (Some(0), _) => Err(usage("iterations is 0; a run has at least 1 trial per profile")),
            (Some(n), _) => Ok(Mode::Iterations(n)),
            (None, Some(d)) if d.is_finite() && d > 0.0 && d < 1e12 => {
                Ok(Mode::Duration(Duration::from_secs_f64(d)))
            }
            (None, _) => Err(usage(
                "neither iterations nor a positive duration_secs; it must be the file torture wrote",
            )),
        }
    }
}

/// What differs between the commands that run trials: their defaults.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub iterations: u64,
    pub trial_timeout: &'static str,
}

impl Defaults {
    pub const RUN: Defaults = Defaults {
        iterations: 1000,
        trial_timeout: "10s",
    };
    pub const EXEC: Defaults = Defaults {
        iterations: 100,
        trial_timeout: "60s",
    };
    pub const SCENARIO: Defaults = Defaults {
        iterations: 200,
        trial_timeout: "20s",
    };
}

pub(crate) fn parse_workload(name: &str) -> Result<Workload, UsageError> {
    Workload::parse(name).ok_or_else(|| {
        usage(format!(
            "unknown workload `{name}`; choose one of: {}",
            Workload::ALL.map(|w| w.name()).join(", ")
        ))
    })
}

fn parse_kill(
    after: &str,
    delay: &str,
    timeout: &str,
) -> Result<(KillPolicy, Duration), UsageError> {
    let kill = KillPolicy::parse(after, delay).map_err(usage)?;
    let trial_timeout =
        parse_duration(timeout).map_err(|e| usage(format!("--trial-timeout: {e}")))?;
    if trial_timeout.is_zero() {
        return Err(usage("--trial-timeout must be more than 0"));
    }
    if kill.latest() >= trial_timeout {
        return Err(usage(format!(
            "the kill window ends after --trial-timeout {timeout}; raise --trial-timeout or shorten the window"
        )));
    }
    Ok((kill, trial_timeout))
}

/// Refuses `-n` counts whose trial indices would overflow (`-p all -n 768614336404564651`).
pub(crate) fn check_plan_size(mode: Mode, profiles: usize) -> Result<(), UsageError> {
    if let Mode::Iterations(n) = mode {
        if n.checked_mul(profiles as u64)
            .is_none_or(|t| t > MAX_TRIALS)
        {
            return Err(usage(format!(
                "--iterations {n} × {profiles} profile(s) is more trials than a run can number (at most {MAX_TRIALS}); give fewer iterations or use --duration"
            )));
        }
    }
    Ok(())
}

/// The most commits a writer makes in an op-indexed trial.
const MAX_FAULT_COMMITS: u64 = 100_000;

/// The most trials one run numbers: far beyond any machine's reach, well inside `u64`.
const MAX_TRIALS: u64 = 1 << 48;

/// `--partition K/N`: shard `k` (1-based) of `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partition {
    pub k: u64,
    pub n: u64,
}

impl Partition {
    pub fn parse(s: &str) -> Result<Partition, String> {
        let fix = "write --partition K/N with 1 <= K <= N, e.g. 2/4";
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--partition {s}: {fix}"))?;
        let k: u64 = k
            .trim()
            .parse()
            .map_err(|_| format!("--partition {s}: {fix}"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("--partition {s}: {fix}"))?;
        if n == 0 || k == 0 || k > n {
            return Err(format!("--partition {s}: {fix}"));
        }
        Ok(Partition { k, n })
    }

    /// The contiguous block of `0..total` this shard runs. Blocks (not strides) keep the profiles'
    /// interleaving inside every shard, so each shard measures every profile alike.
    pub fn range(&self, total: u64) -> std::ops::Range<u64> {
        let start = (u128::from(total) * u128::from(self.k - 1) / u128::from(self.n)) as u64;
        let end = (u128::from(total) * u128::from(self.k) / u128::from(self.n)) as u64;
        start..end
    }
}
