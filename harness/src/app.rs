//! The commands: parse, validate, run, export, and map the result to an exit code.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use torture_workloads::{Profile, Workload};

use crate::cli::{Cli, Command, RunArgs};
use crate::exit_code;
use crate::lab::plan;
use crate::lab::scheduler;
use crate::options::RunOptions;
use crate::output::merge;
use crate::output::progress::Progress;
use crate::output::report;
use crate::output::{junit, trials_csv, Summary, TrialsCsv};
use crate::trial::evidence::TrialNote;
use crate::trial::outcome::Outcome;

/// Runs `torture` with these arguments and returns the process exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    let command_line = shell_words(&args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::CLEAN
            };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Some(Command::Profiles { profile_file }) => list_profiles(profile_file),
        Some(Command::Workloads) => {
            for w in Workload::ALL {
                println!("{:<8} {}", w.name(), w.describe());
            }
            exit_code::CLEAN
        }
        Some(Command::Report { results, format }) => report(&results, &format),
        Some(Command::Replay { failure }) => replay(&failure),
        Some(Command::Merge { out, shards }) => match merge::merge(&out, &shards) {
            Ok(n) => {
                println!("merged {n} trials into {}", out.display());
                exit_code::CLEAN
            }
            Err(e) => usage_error(&e),
        },
        Some(Command::Exec(args)) => exec(args, command_line),
        Some(Command::Scenario { action }) => match action {
            crate::cli::ScenarioAction::List => {
                print!("{}", crate::writers::scenario::list_text());
                exit_code::CLEAN
            }
            crate::cli::ScenarioAction::Run(args) => scenario_run(*args, command_line),
        },
        None => run(cli.run, command_line),
    }
}

fn list_profiles(file: Option<PathBuf>) -> i32 {
    let mut profiles = Profile::builtins();
    if let Some(path) = file {
        match Profile::load_file(&path) {
            Ok(p) => profiles.extend(p),
            Err(e) => return usage_error(&e.to_string()),
        }
    }
    for p in profiles {
        println!("{:<26} {}", p.name, p.describe());
    }
    exit_code::CLEAN
}

fn report(results: &[PathBuf], format: &str) -> i32 {
    let format: report::Format = match format.parse() {
        Ok(f) => f,
        Err(e) => return usage_error(&e.to_string()),
    };
    match report::report(results, format) {
        Ok(text) => {
            print!("{text}");
            exit_code::CLEAN
        }
        Err(e) => usage_error(&e.to_string()),
    }
}

/// `torture replay OUT/failures/<iteration>`: re-runs that one trial and compares.
fn replay(failure: &std::path::Path) -> i32 {
    let note_path = failure.join("trial.json");
    if std::fs::read_to_string(&note_path)
        .is_ok_and(|t| t.contains("\"kind\": \"exec\"") || t.contains("\"kind\":\"exec\""))
    {
        return usage_error(
            "replay: exec-mode trials cannot be replayed (a program's timing is its own); re-run with torture exec --seed",
        );
    }
    let note: TrialNote = match std::fs::read_to_string(&note_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(n) => n,
        Err(e) => {
            return usage_error(&format!(
                "replay: cannot read {} ({e}); give a failure folder a run wrote (OUT/failures/<iteration>)",
                note_path.display()
            ))
        }
    };
    if note.run.scenario.is_some() && note.record.fault == "power-loss" {
        return usage_error(&format!(
            "replay: {} is a pool power-loss trial: its threads interleave anew on every run, so the op log and the cut it drew cannot be replayed; re-run the scenario with --seed {} to sample it again",
            note.record.profile, note.master_seed
        ));
    }
    let out = match tempfile::Builder::new().prefix("torture-replay-").tempdir() {
        Ok(d) => d.keep(),
        Err(e) => return usage_error(&format!("replay: cannot make a folder: {e}")),
    };
    let opts = match RunOptions::from_spec(
        note.run.clone(),
        &out,
        1,
        crate::options::default_work_base(),
        true,
        None,
        false,
    ) {
        Ok(o) => o,
        Err(e) => return usage_error(&format!("replay: {}", e.0)),
    };
    let index = note.record.iteration;
    let mut got = None;
    if let Err(e) = scheduler::run(&opts, std::iter::once(index), None, &mut |r| {
        got = Some(r);
        Ok(())
    }) {
        eprintln!("torture: replay stopped: {e}");
        return exit_code::LAB_ERROR;
    }
    let Some(now) = got else {
        eprintln!("torture: replay produced no trial");
        return exit_code::LAB_ERROR;
    };
    let was = &note.record;
    println!(
        "trial {index} ({}, {}, seed {}): recorded {} — replayed {}",
        was.profile, was.fault, was.seed, was.outcome, now.outcome
    );
    println!("  recorded: {}", was.detail);
    println!("  replayed: {}", now.detail);
    // SQLCipher writes a fresh random IV with every page (OpenSSL's, not SQLite's seeded PRNG), so
    // its files never repeat byte for byte: compare outcomes only.
    let encrypted = matches!(opts.spec.engine, crate::engine::Engine::Sqlcipher { .. });
    let exact = opts.faults.fault.is_op_indexed() && !encrypted;
    let mut same = now.outcome == was.outcome;
    if exact && now.outcome != Outcome::Intact {
        let replayed = out.join("failures").join(index.to_string());
        for suffix in crate::trial::evidence::SIDECARS {
            let name = format!("trial.db{suffix}");
            let a = std::fs::read(failure.join(&name)).ok();
            let b = std::fs::read(replayed.join(&name)).ok();
            if a != b {
                println!("  {name}: differs from the recorded file");
                same = false;
            }
        }
        if same {
            println!("  the crashed files are byte-identical to the recorded ones");
        }
    }
    if encrypted {
        println!("  note: SQLCipher encrypts each page with a fresh random IV, so the files are compared by outcome, not byte for byte");
    } else if !exact {
        println!("  note: a parent's SIGKILL lands with scheduler jitter, so this fault replays the kill point, not the exact instant");
    }
    println!("  replay's files: {}", out.display());
    if same {
        println!("same outcome");
        exit_code::CLEAN
    } else {
        println!("DIFFERENT outcome");
        exit_code::VIOLATION
    }
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("torture: {msg}");
    exit_code::USAGE
}

/// `torture exec [...] -- COMMAND`: validate, calibrate the kill window once, then the same run
/// loop, CSV, summary and verdicts as a profile run.
fn exec(args: Box<crate::cli::ExecArgs>, command_line: String) -> i32 {
    let mut exec = crate::writers::program::ExecOptions::new(args.command.clone());
    exec.shell = args.shell;
    exec.seed_db = args.seed_db.clone();
    exec.recovered_sql = args.recovered_sql.clone();
    exec.verify_sql = args.verify_sql.clone();
    exec.verify_cmd = args.verify_cmd.clone();
    exec.journal_mode = args.journal_mode.clone();
    exec.name = args.name.clone();
    exec.python = args.python.clone();
    exec.key = args.key.clone();
    exec.after_kill = match args
        .after_kill
        .as_deref()
        .map(|a| (a, crate::writers::program::AfterKill::parse(a)))
    {
        None => None,
        Some((_, Some(a))) => Some(a),
        Some((other, None)) => {
            return usage_error(&format!(
                "--after-kill {other}: give delete-wal, delete-journal or db-only"
            ))
        }
    };
    exec.engine = match crate::writers::program::Engine::parse(&args.engine) {
        Some(e) => e,
        None => {
            return usage_error(&format!(
                "unknown engine `{}`; choose sqlite, duckdb or libsql",
                args.engine
            ))
        }
    };
    if let Some(window) = &args.kill_after {
        match crate::trial::kill_point::KillPolicy::parse(window, "0") {
            Ok(crate::trial::kill_point::KillPolicy::AfterTime { window }) => {
                exec.kill_window = Some(window)
            }
            _ => {
                return usage_error(&format!(
                    "--kill-after {window}: exec mode kills at a time since the program's start; write it like 200ms..3s"
                ))
            }
        }
    }
    if let Some(kind) = &args.fault {
        match crate::writers::program::ExecFault::from_flags(
            kind,
            args.sector_size,
            args.lying_disk,
            args.no_powersafe_overwrite,
            args.crash_states.as_deref(),
            args.max_states,
            args.fail_at.as_deref(),
        ) {
            Ok(f) => exec.fault = Some(f),
            Err(e) => return usage_error(&e),
        }
    } else if args.sector_size.is_some()
        || args.lying_disk
        || args.no_powersafe_overwrite
        || args.crash_states.is_some()
        || args.max_states.is_some()
        || args.fail_at.is_some()
    {
        return usage_error("--sector-size, --lying-disk, --no-powersafe-overwrite, --crash-states, --max-states and --fail-at need --fault power-loss|kill-at-op|io-error|disk-full");
    }
    if let Err(e) = exec
        .validate()
        .and_then(|()| crate::writers::program::python_ready(&exec))
    {
        return usage_error(&e);
    }
    let mut run_args = default_run_args();
    run_args.iterations = args.iterations;
    run_args.duration = args.duration.clone();
    run_args.junit = args.junit.clone();
    run_args.seed = args.seed;
    run_args.jobs = args.jobs;
    run_args.out = args.out.clone();
    run_args.dir = args.dir.clone();
    run_args.trial_timeout = args.trial_timeout.clone();
    run_args.fail_on = args.fail_on.clone();
    run_args.no_progress = args.no_progress;
    let mut opts = match RunOptions::validate(run_args, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    if exec.fault.is_some() {
        let timeout = match crate::trial::kill_point::parse_duration(&args.calibration_timeout) {
            Ok(t) => t,
            Err(e) => return usage_error(&format!("--calibration-timeout: {e}")),
        };
        let probed = tempfile::Builder::new()
            .prefix("torture-probe-")
            .tempdir_in(&opts.work_base)
            .map_err(|e| (exit_code::USAGE, format!("cannot make a probe folder: {e}")))
            .and_then(|d| crate::writers::program::probe_recording(&mut exec, d.path(), timeout));
        match probed {
            Ok(line) => eprintln!("torture: {line}"),
            Err((code, e)) => {
                eprintln!("torture: {e}");
                return code;
            }
        }
    } else if exec.kill_window.is_none() {
        let timeout = match crate::trial::kill_point::parse_duration(&args.calibration_timeout) {
            Ok(t) => t,
            Err(e) => return usage_error(&format!("--calibration-timeout: {e}")),
        };
        let scratch = match tempfile::Builder::new()
            .prefix("torture-calibrate-")
            .tempdir_in(&opts.work_base)
        {
            Ok(d) => d,
            Err(e) => return usage_error(&format!("cannot make a calibration folder: {e}")),
        };
        match crate::writers::program::calibrate_report(&exec, scratch.path(), timeout) {
            Ok(c) => {
                eprintln!("torture: calibrated: {c}");
                exec = exec.with_calibration(&c);
            }
            Err(e) => return usage_error(&e),
        }
    }
    if exec.kill_window.is_some_and(|w| w.1 >= opts.trial_timeout) {
        return usage_error("the kill window ends after --trial-timeout; raise --trial-timeout");
    }
    opts.profiles[0].name = exec.profile_name();
    opts.spec.profiles = opts.profiles.clone();
    opts.spec.exec = Some(exec.clone());
    opts.exec = Some(exec);
    run_validated(opts)
}

/// `torture scenario run NAME`: the scenario's variants stand in for profiles, so trials, summary
/// rows and resume work as for a profile run.
fn scenario_run(args: crate::cli::ScenarioRunArgs, command_line: String) -> i32 {
    let Some(profiles) = crate::writers::scenario::profiles(&args.name) else {
        return usage_error(&crate::writers::scenario::unknown(&args.name));
    };
    let mut run_args = default_run_args();
    run_args.workload = args.workload.clone();
    run_args.iterations = args.iterations;
    run_args.junit = args.junit.clone();
    run_args.seed = args.seed;
    run_args.jobs = args.jobs;
    run_args.out = args.out.clone();
    run_args.dir = args.dir.clone();
    run_args.kill_after = args.kill_after.clone();
    run_args.kill_delay = args.kill_delay.clone();
    run_args.trial_timeout = args.trial_timeout.clone();
    run_args.fail_on = args.fail_on.clone();
    run_args.no_progress = args.no_progress;
    let mut opts = match RunOptions::validate(run_args, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    opts.profiles = profiles;
    opts.spec.profiles = opts.profiles.clone();
    opts.spec.scenario = Some(args.name.clone());
    opts.scenario = Some(args.name);
    run_validated(opts)
}

/// A plain run's arguments with every default, for the subcommands that build on a run.
fn default_run_args() -> RunArgs {
    Cli::try_parse_from(["torture"])
        .expect("the defaults parse")
        .run
}

fn run(args: RunArgs, command_line: String) -> i32 {
    let opts = match RunOptions::validate(args, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    run_validated(opts)
}

fn run_validated(opts: RunOptions) -> i32 {
    let trials_path = opts.out_dir.join("trials.csv");
    let mut summary = Summary::with_profile_order(opts.profiles.iter().map(|p| p.name.clone()));
    let mut done = BTreeSet::new();
    let opened = if opts.resume {
        // Rows already written count as done; the summary starts from them.
        match TrialsCsv::open_append(&trials_path).and_then(|csv| {
            let rows = trials_csv::read(&trials_path).map_err(std::io::Error::other)?;
            Ok((csv, rows))
        }) {
            Ok((csv, rows)) => {
                for r in &rows {
                    if done.insert(r.iteration) {
                        summary.add(r);
                    }
                }
                Ok(csv)
            }
            Err(e) => Err(e),
        }
    } else {
        std::fs::create_dir_all(&opts.out_dir)
            .and_then(|()| write_run_spec(&opts))
            .and_then(|()| TrialsCsv::create(&trials_path))
    };
    let mut csv = match opened {
        Ok(c) => c,
        Err(e) => {
            return usage_error(&format!(
                "cannot write results in {}: {e}; choose another --out",
                opts.out_dir.display()
            ))
        }
    };
    let already = done.len() as u64;
    let planned = opts.planned_trials();
    let to_run = planned.map(|p| p.saturating_sub(already));
    eprintln!(
        "torture: {} ({} profile(s), workload {}, {} jobs, seed {}{}{})",
        match (to_run, opts.duration) {
            (Some(n), _) => format!("{n} trials"),
            (None, Some(d)) => format!("trials for {}s", d.as_secs()),
            (None, None) => "trials".to_string(),
        },
        opts.profiles.len(),
        if opts.exec.is_some() {
            "exec".to_string()
        } else if let Some(s) = &opts.scenario {
            format!("scenario {s}")
        } else {
            opts.workload.name().to_string()
        },
        opts.jobs,
        opts.seed,
        opts.partition
            .map(|p| format!(", shard {}/{}", p.k, p.n))
            .unwrap_or_default(),
        if already > 0 {
            format!(", resuming after {already} finished trials")
        } else {
            String::new()
        }
    );
    let deadline = opts.duration.map(|d| std::time::Instant::now() + d);
    let indices = plan::indices(opts.total_trials(), opts.partition, done);
    // The bar is made after the slots are forked (inside the first record), never before.
    let mut progress: Option<Progress> = None;
    let show_progress = opts.progress;
    let result = scheduler::run(&opts, indices, deadline, &mut |record| {
        csv.append(&record)?;
        summary.add(&record);
        progress
            .get_or_insert_with(|| Progress::new(to_run, show_progress))
            .update(&summary);
        Ok(())
    });
    if let Some(p) = &progress {
        p.finish();
    }
    let summary_path = opts.out_dir.join("summary.csv");
    let summary_written = summary.write_csv(&summary_path);
    let junit_written = opts
        .junit
        .as_ref()
        .map(|path| junit::write(path, &summary, opts.fail_on_any).map(|()| path));
    print!("{}", summary.render_table());
    if opts.exec.as_ref().is_some_and(|e| e.fault.is_some()) {
        if let Some(s) = crate::writers::program::crash_states_summary(&opts.out_dir) {
            println!("{s}");
        }
    }
    let end = match result {
        Ok(end) => end,
        Err(e) => {
            eprintln!("torture: the run stopped: {e}");
            return exit_code::LAB_ERROR;
        }
    };
    let ran = summary.trials() - already;
    let rate = ran as f64 / end.elapsed.as_secs_f64().max(1e-9);
    println!(
        "\n{ran} trials in {:.1}s ({rate:.0} trials/s), seed {}",
        end.elapsed.as_secs_f64(),
        opts.seed
    );
    println!(
        "reproduce: {}",
        reproduce_command(&opts.command_line, opts.seed)
    );
    println!("results:   {}", trials_path.display());
    if let Err(e) = summary_written {
        eprintln!("torture: could not write {}: {e}", summary_path.display());
    }
    match junit_written {
        Some(Ok(path)) => println!("junit:     {}", path.display()),
        Some(Err(e)) => eprintln!("torture: could not write the JUnit report: {e}"),
        None => {}
    }
    let failures = opts.out_dir.join("failures");
    if failures.is_dir() {
        println!("evidence:  {}", failures.display());
    }
    let not_intact: u64 = Outcome::ALL
        .iter()
        .filter(|o| o.is_damage())
        .map(|&o| summary.count(o))
        .sum();
    if opts.fail_on_any && not_intact > 0 {
        println!("FAILED (--fail-on any): {not_intact} trial(s) were not intact");
        exit_code::VIOLATION
    } else if summary.violations() > 0 {
        println!(
            "VIOLATION: {} trial(s) broke a promise SQLite documents for their profile; see the evidence folder",
            summary.violations()
        );
        exit_code::VIOLATION
    } else if end.interrupted {
        println!(
            "interrupted: {} trials finished; continue with: torture --resume {}",
            summary.trials(),
            opts.out_dir.display()
        );
        exit_code::INTERRUPTED
    } else if summary.count(Outcome::WorkerError) > 0 || end.lost_trials > 0 {
        println!(
            "lab error: {} worker-error trial(s), {} trial(s) lost with their slot",
            summary.count(Outcome::WorkerError),
            end.lost_trials
        );
        exit_code::LAB_ERROR
    } else {
        exit_code::CLEAN
    }
}

/// Writes `OUT/run.json`: the settings `--resume` and readers of the results need.
fn write_run_spec(opts: &RunOptions) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(&opts.spec).map_err(std::io::Error::other)?;
    std::fs::write(opts.out_dir.join("run.json"), json)
}

/// The command line as one string, quoting words that need it.
fn shell_words(args: &[OsString]) -> String {
    args.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command line with the run's actual seed, placed before a `--` (exec's program comes after it).
fn reproduce_command(command_line: &str, seed: u64) -> String {
    let stripped = strip_seed(command_line);
    match stripped.split_once(" -- ") {
        Some((head, program)) => format!("{head} --seed {seed} -- {program}"),
        None => format!("{stripped} --seed {seed}"),
    }
}

/// The command line without its `--seed` (the caller adds the run's actual seed).
fn strip_seed(command_line: &str) -> String {
    let mut out = Vec::new();
    let mut skip = false;
    for w in command_line.split(' ') {
        if skip {
            skip = false;
            continue;
        }
        if w == "--seed" || w == "-s" {
            skip = true;
            continue;
        }
        if w.starts_with("--seed=") {
            continue;
        }
        out.push(w);
    }
    out.join(" ")
}
