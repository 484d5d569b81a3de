//! Validated run options: the one place bad input dies, with one line that names the fix.
//! Everything is checked before the results folder is created, so a refused run writes nothing.

use std::path::{Path, PathBuf};

use torture_workloads::Profile;

use crate::cli::{CommonArgs, KillArgs, RunArgs};
use crate::config::Partition;
use crate::engine::Engine;
use crate::seed;
use crate::verify::verdict::Fault;

use crate::config::{
    check_plan_size, default_crash_at, default_fault_commits, default_max_states,
    default_sector_size, parse_workload,
};
pub use crate::config::{Defaults, FaultOptions, Mode, RunConfig, RunSpecFile, UsageError};

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
    if let Some((_, flag)) = power_only.iter().find(|(set, _)| {
        // io-error and disk-full check the power cuts after the error too.
        *set && !matches!(fault, Fault::PowerLoss | Fault::IoError | Fault::DiskFull)
    }) {
        return Err(usage(format!(
                "{flag} shapes a power cut and --fault {} has none; add --fault power-loss (or io-error, disk-full) or drop {flag}",
                args.fault
            )));
    }
    let op_only = [
        (args.crash_at != default_crash_at(), "--crash-at"),
        (
            args.fault_commits != default_fault_commits(),
            "--fault-commits",
        ),
        (args.max_states != default_max_states(), "--max-states"),
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

/// The options a run executes with: the run's settings ([`RunConfig`], what `run.json` holds; its
/// fields read through `opts.` directly) and how this invocation runs them.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The run's settings.
    pub spec: RunConfig,
    pub jobs: usize,
    pub out_dir: PathBuf,
    /// The folder under which the run makes its private folder of trial databases.
    pub work_base: PathBuf,
    pub progress: bool,
    pub junit: Option<PathBuf>,
    /// Failed trials whose evidence is kept (`--max-evidence`).
    pub max_evidence: u64,
    /// Bytes of evidence kept in the run (`--max-evidence-bytes`); a quarter of it per trial.
    pub max_evidence_bytes: u64,
    /// Continue the run already in `out_dir`.
    pub resume: bool,
}

impl std::ops::Deref for RunOptions {
    type Target = RunConfig;

    fn deref(&self) -> &RunConfig {
        &self.spec
    }
}

impl RunOptions {
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
            return Self::resume(out, jobs, work_base, common, args.trust_folder);
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
        let spec = RunConfig::new(RunSpecFile {
            profiles,
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
            command_line,
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
            partial: None,
            op_counter: Some(crate::config::OP_COUNTER.to_string()),
            machine: Some(crate::config::Machine::this()),
            started: Some(utc_now()),
        })?;
        Ok(RunOptions {
            spec,
            jobs,
            out_dir,
            work_base,
            progress: !common.no_progress && !common.quiet,
            junit: common.junit.clone(),
            max_evidence: common.max_evidence,
            max_evidence_bytes: common.max_evidence_bytes,
            resume: false,
        })
    }

    /// Options of a run to continue, from its `run.json`.
    fn resume(
        out: &Path,
        jobs: usize,
        work_base: PathBuf,
        args: &CommonArgs,
        trust_folder: bool,
    ) -> Result<RunOptions, UsageError> {
        let path = out.join("run.json");
        let text =
            crate::fsio::read_data_text(&path, crate::fsio::MAX_NOTE_BYTES).map_err(|e| {
                usage(format!(
                "--resume {}: cannot read {} ({e}); give the folder of a run started by torture",
                out.display(),
                path.display()
            ))
            })?;
        let spec: RunConfig = serde_json::from_str(&text).map_err(|e| {
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
        // A results folder is data: the program its run.json names runs only when the user says so.
        if let Some(exec) = spec.exec.as_ref().filter(|_| !trust_folder) {
            return Err(usage(format!(
                "--resume {}: its run.json runs a program ({}); resuming runs it again: add --trust-folder if you trust this folder",
                out.display(),
                crate::reproduce::shell_words_str(&exec.command)
            )));
        }
        let mut opts = Self::from_spec(
            spec,
            out,
            jobs,
            work_base,
            args.no_progress || args.quiet,
            args.junit.clone(),
            true,
        )
        .map_err(|e| usage(format!("--resume {}: {}", out.display(), e.0)))?;
        opts.max_evidence = args.max_evidence;
        opts.max_evidence_bytes = args.max_evidence_bytes;
        Ok(opts)
    }

    /// Options that re-create the run `spec` describes, writing into `out`.
    pub fn from_spec(
        spec: RunConfig,
        out: &Path,
        jobs: usize,
        work_base: PathBuf,
        no_progress: bool,
        junit: Option<PathBuf>,
        resume: bool,
    ) -> Result<RunOptions, UsageError> {
        spec.engine.check_build().map_err(usage)?;
        Ok(RunOptions {
            spec,
            jobs,
            out_dir: out.to_path_buf(),
            work_base,
            progress: !no_progress,
            junit,
            max_evidence: 100,
            max_evidence_bytes: 1 << 30,
            resume,
        })
    }
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

/// Now, UTC, as `2026-12-04T13:44:08Z`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
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
