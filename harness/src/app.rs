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
use crate::lab::space;
use crate::options::{Defaults, RunOptions};
use crate::output::merge;
use crate::output::out_dir;
use crate::output::progress::Progress;
use crate::output::report;
use crate::output::{junit, trials_csv, Summary, TrialsCsv};
use crate::trial::evidence::TrialNote;
use crate::trial::outcome::Outcome;

/// Runs `torture` with these arguments and returns the process exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    // The command line to reproduce a run keeps the version flags (`--sqlite`, `--engine-version`).
    let command_line = shell_words(&crate::versions::as_typed(&args));
    let args = match crate::versions::prepare(args) {
        crate::versions::Prepared::Continue(a) => a,
        crate::versions::Prepared::Exit(code) => return code,
    };
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version: not an error.
            let _ = e.print();
            return exit_code::CLEAN;
        }
        Err(e) => return usage_error(&one_line(&e.render().to_string())),
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
        Some(Command::Merge {
            out,
            shards,
            partial,
        }) => match merge::merge(&out, &shards, partial) {
            Ok(m) => {
                println!("merged {} trials into {}", m.trials, out.display());
                if let Some(missing) = m.partial {
                    println!("partial: {missing}");
                }
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
    if let Err(e) = report::check_one_run_per_shard_set(results) {
        return usage_error(&e);
    }
    match report::report(results, format) {
        Ok(text) => {
            for note in report::partial_notes(results) {
                eprintln!("torture: note: {note}");
            }
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
    let scratch = match tempfile::Builder::new().prefix("torture-replay-").tempdir() {
        Ok(d) => d,
        Err(e) => return usage_error(&format!("replay: cannot make a folder: {e}")),
    };
    let _ = scheduler::claim(scratch.path());
    let out = scratch.path().to_path_buf();
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
        Err(e) => {
            return usage_error(&format!(
                "replay: {}: {}; give a trial.json as torture wrote it",
                note_path.display(),
                e.0
            ))
        }
    };
    let index = note.record.iteration;
    if opts.total_trials().is_some_and(|t| index >= t) {
        return usage_error(&format!(
            "replay: {}: iteration {index} is not a trial of that run (it has {} trials); give a trial.json as torture wrote it",
            note_path.display(),
            opts.total_trials().unwrap_or_default()
        ));
    }
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
    if same {
        // Nothing to look at: the replay's folder goes (a different outcome keeps it).
        println!("same outcome");
        exit_code::CLEAN
    } else {
        let kept = scratch.keep();
        let _ = std::fs::remove_file(kept.join("owner"));
        println!("  replay's files: {}", kept.display());
        println!("DIFFERENT outcome");
        exit_code::VIOLATION
    }
}

/// A clap error as one line: its message and tip, without the usage block.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ")
        + "; see torture --help"
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
    if let Err(e) = exec
        .validate()
        .and_then(|()| match (exec.shell, exec.command.first()) {
            (false, Some(program)) => crate::writers::program::find_program(program),
            _ => Ok(()),
        })
        .and_then(|()| crate::writers::program::python_ready(&exec))
    {
        return usage_error(&e);
    }
    let mut run_args = default_run_args();
    run_args.common = args.common.clone();
    let mut opts = match RunOptions::validate_with(run_args, Defaults::EXEC, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    if exec.kill_window.is_none() {
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
        let _ = scheduler::claim(scratch.path());
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
    run_args.kill = args.kill.clone();
    run_args.common = args.common.clone();
    let mut opts = match RunOptions::validate_with(run_args, Defaults::SCENARIO, command_line) {
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
    if let Err(e) = crate::options::check_fault_flags(&args) {
        return usage_error(&e.0);
    }
    let opts = match RunOptions::validate(args, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    run_validated(opts)
}

fn run_validated(opts: RunOptions) -> i32 {
    let trials_path = opts.out_dir.join("trials.csv");
    let failures_dir = opts.out_dir.join("failures");
    let resume_hint = format!("torture --resume {}", opts.out_dir.display());
    // The scratch disk must have room before anything is written.
    if let Some(free) = space::free_bytes(&opts.work_base).filter(|&f| f < space::START_SPACE) {
        eprintln!(
            "torture: the lab's scratch disk is full: --dir {} has {} free, the lab needs at least {}; free space or point --dir at a larger file system",
            opts.work_base.display(),
            space::human(free),
            space::human(space::START_SPACE)
        );
        return exit_code::LAB_ERROR;
    }
    let mut summary = Summary::with_profile_order(opts.profiles.iter().map(|p| p.name.clone()));
    let mut done = BTreeSet::new();
    let mut failures: u64 = 0;
    let opened = if opts.resume {
        open_to_resume(&opts, &mut done, &mut summary, &mut failures)
    } else {
        start_fresh(&opts)
    };
    let (_lock, mut csv) = match opened {
        Ok(x) => x,
        Err((code, msg)) => {
            eprintln!("torture: {msg}");
            return code;
        }
    };
    // Evidence already kept: the folders of finished trials. A folder without a row belongs to a
    // trial that runs again, so it goes.
    let mut kept: u64 = 0;
    for e in std::fs::read_dir(&failures_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        match e.file_name().to_string_lossy().parse::<u64>() {
            Ok(i) if done.contains(&i) => kept += 1,
            _ => {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let already = done.len() as u64;
    let planned = opts.planned_trials();
    let to_run = planned.map(|p| p.saturating_sub(already));
    let used = if opts.resume {
        out_dir::elapsed(&opts.out_dir)
    } else {
        std::time::Duration::ZERO
    };
    let budget = opts.mode.duration().map(|d| d.saturating_sub(used));
    eprintln!(
        "torture: {} ({} profile(s), workload {}, {} jobs, seed {}{}{})",
        match (to_run, budget) {
            (Some(n), _) => format!("{n} trials"),
            (None, Some(d)) if !used.is_zero() => {
                format!("trials for the {:.0}s left", d.as_secs_f64())
            }
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
    let started = std::time::Instant::now();
    let deadline = budget.map(|d| started + d);
    let indices = plan::indices(opts.total_trials(), opts.partition, done);
    // The bar is made after the slots are forked (inside the first record), never before.
    let mut progress: Option<Progress> = None;
    let show_progress = opts.progress;
    let mut stop: Option<String> = None;
    let mut never_fired: Vec<String> = Vec::new();
    let mut last_saved = started;
    let result = scheduler::run(&opts, indices, deadline, &mut |record| {
        let evidence = failures_dir.join(record.iteration.to_string());
        let halt = |stop: &mut Option<String>, msg: String| {
            let _ = std::fs::remove_dir_all(&evidence);
            *stop = Some(msg);
            Err(std::io::Error::other("stopped"))
        };
        // A full scratch disk decides nothing about SQLite: stop, and the trial runs again on resume.
        if let Some(reason) = space::scratch_full(&record, opts.faults.fault, &opts.work_base) {
            return halt(&mut stop, reason);
        }
        if record.outcome != Outcome::Intact {
            // Its evidence is complete before its row is written, or the trial runs again.
            let note = std::fs::read_to_string(evidence.join("trial.json")).unwrap_or_default();
            if evidence.is_dir() && serde_json::from_str::<serde_json::Value>(&note).is_err()
                || record.detail.contains("evidence not saved")
            {
                let free = space::free_bytes(&opts.out_dir).map_or("?".into(), space::human);
                return halt(
                    &mut stop,
                    format!(
                        "cannot save the evidence of trial {} in {} ({free} free): {}",
                        record.iteration,
                        evidence.display(),
                        record
                            .detail
                            .rsplit("evidence not saved: ")
                            .next()
                            .unwrap_or("")
                    ),
                );
            }
            failures += 1;
            if evidence.is_dir() {
                if kept < opts.max_evidence {
                    kept += 1;
                } else {
                    let _ = std::fs::remove_dir_all(&evidence);
                }
            }
        }
        if let Some(n) = fault_never_fired(&record.kill_point) {
            never_fired.push(n);
        }
        if let Err(e) = csv.append(&record) {
            return halt(
                &mut stop,
                format!(
                    "cannot write {} ({e}; {} free)",
                    trials_path.display(),
                    space::free_bytes(&opts.out_dir).map_or("?".into(), space::human)
                ),
            );
        }
        summary.add(&record);
        progress
            .get_or_insert_with(|| Progress::new(to_run, show_progress))
            .update(&summary);
        if budget.is_some() && last_saved.elapsed().as_millis() >= 500 {
            last_saved = std::time::Instant::now();
            out_dir::save_elapsed(&opts.out_dir, used + started.elapsed());
        }
        Ok(())
    });
    if let Some(p) = &progress {
        p.finish();
    }
    if budget.is_some() {
        out_dir::save_elapsed(&opts.out_dir, used + started.elapsed());
    }
    let summary_path = opts.out_dir.join("summary.csv");
    let summary_written = summary.write_csv(&summary_path);
    if summary_written.is_err() {
        let _ = std::fs::remove_file(summary_path.with_extension("csv.tmp"));
    }
    let junit_written = opts
        .junit
        .as_ref()
        .map(|path| junit::write(path, &summary, opts.fail_on_any).map(|()| path));
    print!("{}", summary.render_table());
    if let Err(e) = &summary_written {
        eprintln!(
            "torture: could not write {}: {e}; free space, then rewrite it with: {resume_hint}",
            summary_path.display()
        );
    }
    let end = match (result, stop) {
        (_, Some(reason)) => {
            eprintln!("torture: {reason}; free space, then continue with: {resume_hint}");
            return exit_code::LAB_ERROR;
        }
        (Ok(end), None) => end,
        (Err(e), None) => {
            let free = space::free_bytes(&opts.work_base).map_or("?".into(), space::human);
            eprintln!(
                "torture: the run stopped: {e} (--dir {} has {free} free); continue with: {resume_hint}",
                opts.work_base.display()
            );
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
    match junit_written {
        Some(Ok(path)) => println!("junit:     {}", path.display()),
        Some(Err(e)) => eprintln!("torture: could not write the JUnit report: {e}"),
        None => {}
    }
    if failures > 0 {
        println!(
            "evidence:  {} ({kept} of {failures} failures kept{})",
            failures_dir.display(),
            if kept < failures {
                format!(", --max-evidence {}", opts.max_evidence)
            } else {
                String::new()
            }
        );
    }
    if let Some(first) = never_fired.first() {
        println!(
            "note: the fault never fired in {} trial(s): {first} (--crash-at asks for an operation the workload never reaches)",
            never_fired.len()
        );
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
            "interrupted: {} trials finished; continue with: {resume_hint}",
            summary.trials(),
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

/// An op-indexed trial whose fault never fired: `op=N/T` with N beyond the T operations made.
fn fault_never_fired(kill_point: &str) -> Option<String> {
    let rest = kill_point.strip_prefix("op=")?;
    let (n, rest) = rest.split_once('/')?;
    let t: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let (n, t): (u64, u64) = (n.parse().ok()?, t.parse().ok()?);
    (n > t).then(|| format!("operation {n} of {t}"))
}

type Opened = (out_dir::OutLock, TrialsCsv);
type Refused = (i32, String);

/// A new run: OUT, its lock, `run.json`, the CSV header. If any of it fails, what was made goes.
fn start_fresh(opts: &RunOptions) -> Result<Opened, Refused> {
    let out = &opts.out_dir;
    let existed = out.exists();
    let made = (|| {
        std::fs::create_dir_all(out)?;
        let lock = out_dir::lock(out).map_err(|e| match e {
            out_dir::LockError::InUse => std::io::Error::other(out_dir::in_use(out)),
            out_dir::LockError::Io(e) => e,
        })?;
        let json = serde_json::to_string_pretty(&opts.spec).map_err(std::io::Error::other)?;
        out_dir::write_whole(&out.join("run.json"), json.as_bytes())?;
        let csv = TrialsCsv::create(&out.join("trials.csv"))?;
        Ok::<_, std::io::Error>((lock, csv))
    })();
    made.map_err(|e| {
        if !existed {
            let _ = std::fs::remove_dir_all(out);
        } else {
            for f in ["run.json", "trials.csv"] {
                let _ = std::fs::remove_file(out.join(f));
            }
        }
        refused_out(out, &e, "choose another --out")
    })
}

/// A resumed run: lock OUT (refusing a second writer), cut a torn last row, count what is done.
fn open_to_resume(
    opts: &RunOptions,
    done: &mut BTreeSet<u64>,
    summary: &mut Summary,
    failures: &mut u64,
) -> Result<Opened, Refused> {
    let out = &opts.out_dir;
    let lock = match out_dir::lock(out) {
        Ok(l) => l,
        Err(out_dir::LockError::InUse) => return Err((exit_code::USAGE, out_dir::in_use(out))),
        Err(out_dir::LockError::Io(e)) => return Err(refused_out(out, &e, "check the folder")),
    };
    let trials_path = out.join("trials.csv");
    let csv = TrialsCsv::open_append(&trials_path)
        .map_err(|e| refused_out(out, &e, "check the folder"))?;
    let rows = trials_csv::read(&trials_path).map_err(|e| {
        (
            exit_code::USAGE,
            format!(
                "--resume: {} is unreadable ({e}); it must be the file torture wrote",
                trials_path.display()
            ),
        )
    })?;
    for r in &rows {
        if done.insert(r.iteration) {
            summary.add(r);
            if r.outcome != Outcome::Intact {
                *failures += 1;
            }
        }
    }
    Ok((lock, csv))
}

/// A results folder that cannot be written: a full disk is the lab's (exit 3), the rest usage.
fn refused_out(out: &std::path::Path, e: &std::io::Error, fix: &str) -> Refused {
    if space::is_no_space(e) {
        let free = space::free_bytes(out.parent().unwrap_or(out)).map_or("?".into(), space::human);
        (
            exit_code::LAB_ERROR,
            format!(
                "cannot write results in {}: {e} ({free} free); free space or {fix}",
                out.display()
            ),
        )
    } else {
        (
            exit_code::USAGE,
            format!("cannot write results in {}: {e}; {fix}", out.display()),
        )
    }
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
