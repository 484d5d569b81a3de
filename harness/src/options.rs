//! Validated run options: the one place bad input dies, with one line that names the fix.
//! Everything is checked before the results folder is created, so a refused run writes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use torture_workloads::{Profile, Workload};

use crate::cli::RunArgs;
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
fn default_max_states() -> u64 {
    64
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
    /// Power loss: at most this many crash states checked per trial.
    pub max_states: u64,
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
        if spec.max_states == 0 {
            return Err(usage("--max-states 0 checks nothing; give at least 1"));
        }
        // Power loss records every writer of the trial in one order (the file-operation recorder).
        if fault.is_op_indexed() && fault != Fault::PowerLoss {
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
            max_states: spec.max_states,
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

/// The options a run executes with.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub profiles: Vec<Profile>,
    pub workload: Workload,
    /// Trials per profile; `None` when the run is bounded by `duration` instead.
    pub iterations: Option<u64>,
    pub duration: Option<Duration>,
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
    /// Trials in the whole run (all shards): `iterations` of every profile, interleaved.
    pub fn total_trials(&self) -> Option<u64> {
        self.iterations.map(|n| n * self.profiles.len() as u64)
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

    pub fn validate(args: RunArgs, command_line: String) -> Result<RunOptions, UsageError> {
        let jobs = match args.jobs {
            Some(0) => return Err(usage("--jobs 0 runs nothing; give at least 1")),
            Some(j) if j > 256 => return Err(usage("--jobs is at most 256")),
            Some(j) => j,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let work_base = match &args.dir {
            Some(d) => {
                check_writable_dir(d, "--dir")?;
                d.clone()
            }
            None => default_work_base(),
        };
        if let Some(out) = &args.resume {
            return Self::resume(out, jobs, work_base, &args);
        }
        let profiles = select_profiles(&args.profile, args.profile_file.as_deref())?;
        let workload = parse_workload(&args.workload)?;
        let duration = match &args.duration {
            Some(d) => {
                let d = parse_duration(d).map_err(|e| usage(format!("--duration: {e}")))?;
                if d.is_zero() {
                    return Err(usage("--duration 0 runs nothing; give e.g. 90s or 10m"));
                }
                Some(d)
            }
            None => None,
        };
        let iterations = match duration {
            Some(_) => None,
            None if args.iterations == 0 => {
                return Err(usage("--iterations 0 runs nothing; give at least 1"))
            }
            None => Some(args.iterations),
        };
        let partition = match &args.partition {
            Some(p) => {
                if duration.is_some() {
                    return Err(usage(
                        "--partition needs --iterations (a --duration run has no fixed set of trials to split)",
                    ));
                }
                Some(Partition::parse(p).map_err(usage)?)
            }
            None => None,
        };
        let (kill, trial_timeout) =
            parse_kill(&args.kill_after, &args.kill_delay, &args.trial_timeout)?;
        if args.max_commits == 0 {
            return Err(usage("--max-commits 0 writes nothing; give at least 1"));
        }
        let engine = Engine::parse(&args.engine, args.key.as_deref()).map_err(usage)?;
        let seed = args.seed.unwrap_or_else(seed::fresh_master_seed);
        let out_dir = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("results").join(default_run_name(seed)));
        check_out_dir(&out_dir)?;
        let spec = RunSpec {
            profiles: profiles.clone(),
            workload: workload.name().to_string(),
            iterations,
            duration_secs: duration.map(|d| d.as_secs_f64()),
            seed,
            kill_after: args.kill_after.clone(),
            kill_delay: args.kill_delay.clone(),
            trial_timeout: args.trial_timeout.clone(),
            max_commits: args.max_commits,
            partition,
            fail_on: args.fail_on.clone(),
            command_line: command_line.clone(),
            sqlite_version: crate::engine::version(),
            fault: args.fault.clone(),
            crash_at: args.crash_at.clone(),
            fault_commits: args.fault_commits,
            sector_size: args.sector_size,
            lying_disk: args.lying_disk,
            no_powersafe_overwrite: args.no_powersafe_overwrite,
            crash_recovery: args.crash_recovery,
            max_states: args.max_states,
            exec: None,
            scenario: None,
            engine,
        };
        let faults = FaultOptions::from_spec(&spec, &profiles)?;
        Ok(RunOptions {
            exec: spec.exec.clone(),
            scenario: spec.scenario.clone(),
            faults,
            profiles,
            workload,
            iterations,
            duration,
            partition,
            seed,
            jobs,
            out_dir,
            work_base,
            kill,
            trial_timeout,
            max_commits: args.max_commits,
            progress: !args.no_progress,
            fail_on_any: args.fail_on == "any",
            junit: args.junit.clone(),
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
        args: &RunArgs,
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
        Self::from_spec(
            spec,
            out,
            jobs,
            work_base,
            args.no_progress,
            args.junit.clone(),
            true,
        )
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
        Ok(RunOptions {
            exec: spec.exec.clone(),
            scenario: spec.scenario.clone(),
            faults,
            profiles: spec.profiles.clone(),
            workload,
            iterations: spec.iterations,
            duration: spec.duration_secs.map(Duration::from_secs_f64),
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
fn select_profiles(names: &[String], file: Option<&Path>) -> Result<Vec<Profile>, UsageError> {
    let mut known = Profile::builtins();
    let mut from_file = Vec::new();
    if let Some(path) = file {
        from_file = Profile::load_file(path).map_err(|e| usage(e.to_string()))?;
        for p in &from_file {
            known.retain(|k| k.name != p.name);
        }
        known.extend(from_file.iter().cloned());
    }
    // With a profile file and no explicit --profile, run the file's profiles.
    let names: Vec<String> = if file.is_some() && names == ["wal-full"] {
        from_file.iter().map(|p| p.name.clone()).collect()
    } else {
        names.iter().map(|n| n.trim().to_string()).collect()
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
        let all = select_profiles(&["all".into()], None).unwrap();
        assert_eq!(all.len(), 24);
        let wal = select_profiles(&["wal-*".into()], None).unwrap();
        assert!(wal.iter().all(|p| p.name.starts_with("wal-")));
        assert!(wal.len() >= 4);
        let full = select_profiles(&["*-full".into(), "wal-full".into()], None).unwrap();
        assert_eq!(full.len(), 6, "duplicates are dropped");
        assert!(select_profiles(&["wal-fulll".into()], None).is_err());
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
    }
}
