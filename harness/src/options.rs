//! Validated run options: the one place bad input dies, with one line that names the fix.
//! Everything is checked before the results folder is created, so a refused run writes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use torture_workloads::{Profile, Workload};

use crate::cli::{CommonArgs, KillArgs, RunArgs};
use crate::engine::Engine;
use crate::faults::{OpFilter, PowerLossModel};
use crate::lab::plan::Partition;
use crate::lab::seed;
use crate::trial::kill_point::{parse_duration, KillPolicy};
use crate::verify::verdict::Fault;
use crate::writers::program::ExecOptions;

/// A usage error: printed as `torture: <message>` and exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// A plain run's fault flags that the chosen fault never reads: refused rather than silently
/// ignored (`--lying-disk` under SIGKILL, `--crash-at` without an op-indexed fault). Only for what
/// the user typed on a plain run: scenarios place their own power cuts with these settings.
pub fn check_fault_flags(args: &RunArgs) -> Result<(), UsageError> {
    if args.resume.is_some() {
        return Ok(());
    }
    // An unknown fault is reported by validation, with the list of faults.
    let Some(fault) = Fault::parse(&args.fault) else {
        return Ok(());
    };
    // Settings the chosen fault never reads: refuse them rather than run trials they cannot touch.
    let power_only = [
        (args.lying_disk, "--lying-disk"),
        (args.no_powersafe_overwrite, "--no-powersafe-overwrite"),
        (args.sector_size != default_sector_size(), "--sector-size"),
    ];
    if let Some((_, flag)) = power_only
        .iter()
        .find(|(set, _)| *set && fault != Fault::PowerLoss)
    {
        return Err(usage(format!(
                "{flag} shapes a power cut and --fault {} has none; add --fault power-loss or drop {flag}",
                args.fault
            )));
    }
    let op_only = [
        (args.crash_at != default_crash_at(), "--crash-at"),
        (
            args.fault_commits != default_fault_commits(),
            "--fault-commits",
        ),
    ];
    if let Some((_, flag)) = op_only
        .iter()
        .find(|(set, _)| *set && !fault.is_op_indexed())
    {
        return Err(usage(format!(
                "{flag} places an op-indexed fault and --fault {} counts no operations; add --fault kill-at-op, power-loss, io-error or disk-full, or drop {flag}",
                args.fault
            )));
    }
    Ok(())
}

/// What `OUT/run.json` holds: every setting that decides which trials a run makes, so `--resume`
/// continues exactly the same run and a reader knows how the results were produced.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
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
}

fn default_fault() -> String {
    "sigkill".into()
}
fn default_crash_at() -> String {
    "any".into()
}
fn default_fault_commits() -> u64 {
    20
}
fn default_sector_size() -> u32 {
    512
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
    pub model: PowerLossModel,
    /// Crash the first opener mid-recovery before the oracle recovers.
    pub crash_recovery: bool,
}

impl FaultOptions {
    fn from_spec(spec: &RunSpec, profiles: &[Profile]) -> Result<FaultOptions, UsageError> {
        let fault = Fault::parse(&spec.fault).ok_or_else(|| {
            usage(format!(
                "unknown fault `{}`; choose one of: {}",
                spec.fault,
                Fault::ALL.map(|f| f.as_str()).join(", ")
            ))
        })?;
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
        if spec.fault_commits == 0 {
            return Err(usage("--fault-commits 0 writes nothing; give at least 1"));
        }
        if !(512..=65536).contains(&spec.sector_size) || !spec.sector_size.is_power_of_two() {
            return Err(usage(format!(
                "--sector-size {} is not a power of two from 512 to 65536",
                spec.sector_size
            )));
        }
        if fault.is_op_indexed() {
            if let Some(p) = profiles.iter().find(|p| p.writers() != 1) {
                return Err(usage(format!(
                    "--fault {} needs one writer so crash points replay exactly; profile `{}` has {} processes × {} connections (a pool of connections under power loss: `torture scenario run pool`, its -power variants)",
                    fault.as_str(), p.name, p.processes, p.connections
                )));
            }
        }
        Ok(FaultOptions {
            fault,
            filter,
            op,
            commits: spec.fault_commits,
            crash_recovery: spec.crash_recovery,
            model: PowerLossModel {
                sector_size: spec.sector_size,
                ignore_fsync: spec.lying_disk,
                powersafe_overwrite: !spec.no_powersafe_overwrite,
                ..PowerLossModel::default()
            },
        })
    }

    /// False when the power-loss model breaks an assumption SQLite documents, on request.
    pub fn hardware_as_documented(&self) -> bool {
        !self.model.ignore_fsync && self.model.powersafe_overwrite
    }
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
    fn from_args(
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
    fn from_spec(spec: &RunSpec) -> Result<Mode, UsageError> {
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

/// The options a run executes with.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub profiles: Vec<Profile>,
    pub workload: Workload,
    /// A number of trials per profile, or a time budget.
    pub mode: Mode,
    pub partition: Option<Partition>,
    pub seed: u64,
    pub jobs: usize,
    pub out_dir: PathBuf,
    /// The folder under which the run makes its private folder of trial databases.
    pub work_base: PathBuf,
    pub kill: KillPolicy,
    pub trial_timeout: Duration,
    pub max_commits: u64,
    pub progress: bool,
    /// Exit 1 on any non-intact trial, not only on violations.
    pub fail_on_any: bool,
    pub junit: Option<PathBuf>,
    /// Failed trials whose evidence is kept (`--max-evidence`).
    pub max_evidence: u64,
    /// Continue the run already in `out_dir`.
    pub resume: bool,
    /// The command line, as recorded in failure notes.
    pub command_line: String,
    pub faults: FaultOptions,
    /// `torture exec`: trials run this program instead of a workload.
    pub exec: Option<ExecOptions>,
    /// `torture scenario run NAME`: trials run this scenario's variants instead of profiles.
    pub scenario: Option<String>,
    /// The settings as written to `run.json`.
    pub spec: RunSpec,
}

impl RunOptions {
    /// Trials in the whole run (all shards): `iterations` of every profile, interleaved. Validation
    /// refuses counts whose product overflows.
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

    /// A plain run's options (`torture [OPTIONS]`).
    pub fn validate(args: RunArgs, command_line: String) -> Result<RunOptions, UsageError> {
        Self::validate_with(args, Defaults::RUN, command_line)
    }

    /// Options of any command that runs trials, with that command's defaults.
    pub fn validate_with(
        args: RunArgs,
        defaults: Defaults,
        command_line: String,
    ) -> Result<RunOptions, UsageError> {
        let common = &args.common;
        let jobs = match common.jobs {
            Some(0) => return Err(usage("--jobs 0 runs nothing; give at least 1")),
            Some(j) if j > 256 => return Err(usage("--jobs is at most 256")),
            Some(j) => j,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let work_base = match &common.dir {
            Some(d) => {
                check_writable_dir(d, "--dir")?;
                d.clone()
            }
            None => default_work_base(),
        };
        if let Some(junit) = &common.junit {
            check_writable_file(junit, "--junit")?;
        }
        if let Some(out) = &args.resume {
            return Self::resume(out, jobs, work_base, common);
        }
        let profiles = select_profiles(args.profile.as_deref(), args.profile_file.as_deref())?;
        let workload = parse_workload(&args.workload)?;
        let mode = Mode::from_args(
            common.iterations,
            common.duration.as_deref(),
            defaults.iterations,
        )?;
        check_plan_size(mode, profiles.len())?;
        let partition = match &args.partition {
            Some(p) => {
                if let Mode::Duration(_) = mode {
                    return Err(usage(
                        "--partition needs --iterations (a --duration run has no fixed set of trials to split)",
                    ));
                }
                Some(Partition::parse(p).map_err(usage)?)
            }
            None => None,
        };
        let trial_timeout_text = common
            .trial_timeout
            .clone()
            .unwrap_or_else(|| defaults.trial_timeout.to_string());
        let KillArgs {
            kill_after,
            kill_delay,
        } = &args.kill;
        let (kill, trial_timeout) = parse_kill(kill_after, kill_delay, &trial_timeout_text)?;
        if args.max_commits == 0 {
            return Err(usage("--max-commits 0 writes nothing; give at least 1"));
        }
        let engine = Engine::parse(&args.engine, args.key.as_deref()).map_err(usage)?;
        let seed = common.seed.unwrap_or_else(seed::fresh_master_seed);
        let out_dir = common
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(default_run_name(seed)));
        check_out_dir(&out_dir)?;
        let spec = RunSpec {
            profiles: profiles.clone(),
            workload: workload.name().to_string(),
            iterations: mode.iterations(),
            duration_secs: mode.duration().map(|d| d.as_secs_f64()),
            seed,
            kill_after: kill_after.clone(),
            kill_delay: kill_delay.clone(),
            trial_timeout: trial_timeout_text,
            max_commits: args.max_commits,
            partition,
            fail_on: common.fail_on.clone(),
            command_line: command_line.clone(),
            sqlite_version: crate::engine::version(),
            fault: args.fault.clone(),
            crash_at: args.crash_at.clone(),
            fault_commits: args.fault_commits,
            sector_size: args.sector_size,
            lying_disk: args.lying_disk,
            no_powersafe_overwrite: args.no_powersafe_overwrite,
            crash_recovery: args.crash_recovery,
            exec: None,
            scenario: None,
            engine,
            partial: None,
        };
        let faults = FaultOptions::from_spec(&spec, &profiles)?;
        Ok(RunOptions {
            exec: spec.exec.clone(),
            scenario: spec.scenario.clone(),
            faults,
            profiles,
            workload,
            mode,
            partition,
            seed,
            jobs,
            out_dir,
            work_base,
            kill,
            trial_timeout,
            max_commits: args.max_commits,
            progress: !common.no_progress,
            fail_on_any: common.fail_on == "any",
            junit: common.junit.clone(),
            max_evidence: common.max_evidence,
            resume: false,
            command_line,
            spec,
        })
    }

    /// Options of a run to continue, from its `run.json`.
    fn resume(
        out: &Path,
        jobs: usize,
        work_base: PathBuf,
        args: &CommonArgs,
    ) -> Result<RunOptions, UsageError> {
        let path = out.join("run.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            usage(format!(
                "--resume {}: cannot read {} ({e}); give the folder of a run started by torture",
                out.display(),
                path.display()
            ))
        })?;
        let spec: RunSpec = serde_json::from_str(&text).map_err(|e| {
            usage(format!(
                "--resume {}: {} is malformed ({e}); it must be the file torture wrote",
                out.display(),
                path.display()
            ))
        })?;
        if !out.join("trials.csv").is_file() {
            return Err(usage(format!(
                "--resume {}: no trials.csv there; start a new run instead",
                out.display()
            )));
        }
        let mut opts = Self::from_spec(
            spec,
            out,
            jobs,
            work_base,
            args.no_progress,
            args.junit.clone(),
            true,
        )
        .map_err(|e| usage(format!("--resume {}: {}", out.display(), e.0)))?;
        opts.max_evidence = args.max_evidence;
        Ok(opts)
    }

    /// Options that re-create the run `spec` describes, writing into `out`.
    pub fn from_spec(
        spec: RunSpec,
        out: &Path,
        jobs: usize,
        work_base: PathBuf,
        no_progress: bool,
        junit: Option<PathBuf>,
        resume: bool,
    ) -> Result<RunOptions, UsageError> {
        let workload = parse_workload(&spec.workload)?;
        let (kill, trial_timeout) =
            parse_kill(&spec.kill_after, &spec.kill_delay, &spec.trial_timeout)?;
        let faults = FaultOptions::from_spec(&spec, &spec.profiles)?;
        spec.engine.check_build().map_err(usage)?;
        // A hand-edited file: every field in range, or one line saying which is not.
        if spec.profiles.is_empty() {
            return Err(usage("no profiles; it must be the file torture wrote"));
        }
        for p in &spec.profiles {
            p.validate().map_err(|e| usage(e.to_string()))?;
        }
        let mode = Mode::from_spec(&spec)?;
        check_plan_size(mode, spec.profiles.len())?;
        if spec.max_commits == 0 {
            return Err(usage("max_commits is 0; a writer commits at least once"));
        }
        if let Some(p) = spec.partition {
            if p.k == 0 || p.k > p.n {
                return Err(usage(format!(
                    "partition {}/{} is not a shard K/N with 1 <= K <= N",
                    p.k, p.n
                )));
            }
        }
        Ok(RunOptions {
            exec: spec.exec.clone(),
            scenario: spec.scenario.clone(),
            faults,
            profiles: spec.profiles.clone(),
            workload,
            mode,
            partition: spec.partition,
            seed: spec.seed,
            jobs,
            out_dir: out.to_path_buf(),
            work_base,
            kill,
            trial_timeout,
            max_commits: spec.max_commits,
            progress: !no_progress,
            fail_on_any: spec.fail_on == "any",
            junit,
            max_evidence: 100,
            resume,
            command_line: spec.command_line.clone(),
            spec,
        })
    }
}

fn parse_workload(name: &str) -> Result<Workload, UsageError> {
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

/// Resolves `--profile` names (with `*` globs and `all`) against the built-in and file profiles.
/// `names` is `None` when no `--profile` was typed: then `wal-full`, or the file's profiles.
fn select_profiles(
    names: Option<&[String]>,
    file: Option<&Path>,
) -> Result<Vec<Profile>, UsageError> {
    let mut known = Profile::builtins();
    let mut from_file = Vec::new();
    if let Some(path) = file {
        // The loader refuses names that shadow a built-in profile or repeat within the file.
        from_file = Profile::load_file(path).map_err(|e| usage(e.to_string()))?;
        known.extend(from_file.iter().cloned());
    }
    let names: Vec<String> = match names {
        Some(names) => names.iter().map(|n| n.trim().to_string()).collect(),
        None if file.is_some() => from_file.iter().map(|p| p.name.clone()).collect(),
        None => vec!["wal-full".to_string()],
    };
    let mut chosen: Vec<Profile> = Vec::new();
    for name in &names {
        if name.is_empty() {
            return Err(usage(
                "an empty profile name in --profile; separate names with single commas",
            ));
        }
        let matches: Vec<&Profile> = if name == "all" {
            known.iter().filter(|p| is_matrix_name(&p.name)).collect()
        } else {
            known.iter().filter(|p| glob_match(name, &p.name)).collect()
        };
        if matches.is_empty() {
            return Err(usage(format!(
                "unknown profile `{name}`; run `torture profiles` to list them, or define it in a --profile-file"
            )));
        }
        for p in matches {
            if !chosen.iter().any(|c| c.name == p.name) {
                chosen.push(p.clone());
            }
        }
    }
    Ok(chosen)
}

/// The 24 `<journal_mode>-<synchronous>` profiles are what `all` means.
fn is_matrix_name(name: &str) -> bool {
    name.split('-').count() == 2
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            if !name.starts_with(head) {
                return false;
            }
            let tail = &name[head.len()..];
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

pub fn default_work_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && check_writable_dir(shm, "/dev/shm").is_ok() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Refuses `-n` counts whose trial indices would overflow (`-p all -n 768614336404564651`).
fn check_plan_size(mode: Mode, profiles: usize) -> Result<(), UsageError> {
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

/// The most trials one run numbers: far beyond any machine's reach, well inside `u64`.
const MAX_TRIALS: u64 = 1 << 48;

/// A file the run will write at the end (`--junit`): refuse now if it cannot be, not after the run.
fn check_writable_file(path: &Path, what: &str) -> Result<(), UsageError> {
    if path.is_dir() {
        return Err(usage(format!(
            "{what} {} is a folder; give a file path",
            path.display()
        )));
    }
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| {
                usage(format!(
                    "{what} {} is not writable ({e}); choose another path",
                    path.display()
                ))
            });
    }
    // The nearest existing ancestor must be a writable folder (the run may create the rest, e.g.
    // --junit OUT/junit.xml inside a new --out).
    let mut ancestor = path.parent();
    while let Some(a) = ancestor {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        if a.exists() {
            return check_writable_dir(a, what).map_err(|_| {
                usage(format!(
                    "{what} {}: {} is not a writable folder; choose another path",
                    path.display(),
                    a.display()
                ))
            });
        }
        ancestor = a.parent();
    }
    Ok(())
}

fn check_writable_dir(dir: &Path, what: &str) -> Result<(), UsageError> {
    if !dir.is_dir() {
        return Err(usage(format!(
            "{what} {} is not a directory; create it or point {what} elsewhere",
            dir.display()
        )));
    }
    tempfile::tempfile_in(dir).map(drop).map_err(|e| {
        usage(format!(
            "{what} {} is not writable ({e}); point {what} at a folder you can write",
            dir.display()
        ))
    })
}

/// The results folder must be new or empty, and creatable: refuse before anything runs.
fn check_out_dir(out: &Path) -> Result<(), UsageError> {
    if out.exists() {
        if !out.is_dir() {
            return Err(usage(format!(
                "--out {} is a file; give a folder",
                out.display()
            )));
        }
        let has_entries = std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
        if has_entries {
            return Err(usage(format!(
                "--out {} already holds results; give a new folder",
                out.display()
            )));
        }
        return check_writable_dir(out, "--out");
    }
    // Find the nearest existing ancestor and check it is writable, without creating anything.
    let mut ancestor = out.parent();
    while let Some(a) = ancestor {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        if a.exists() {
            return check_writable_dir(a, "--out").map_err(|_| {
                usage(format!(
                    "cannot create --out {}: {} is not a writable folder; choose another --out",
                    out.display(),
                    a.display()
                ))
            });
        }
        ancestor = a.parent();
    }
    Ok(())
}

/// `YYYYMMDD-HHMMSS-seed<seed>` in UTC.
fn default_run_name(seed: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-seed{seed}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_select_profiles() {
        let all = select_profiles(Some(&["all".into()]), None).unwrap();
        assert_eq!(all.len(), 24);
        let wal = select_profiles(Some(&["wal-*".into()]), None).unwrap();
        assert!(wal.iter().all(|p| p.name.starts_with("wal-")));
        assert!(wal.len() >= 4);
        let full = select_profiles(Some(&["*-full".into(), "wal-full".into()]), None).unwrap();
        assert_eq!(full.len(), 6, "duplicates are dropped");
        assert!(select_profiles(Some(&["wal-fulll".into()]), None).is_err());
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
    }
}
