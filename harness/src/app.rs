//! The commands: parse, validate, run, export, and map the result to an exit code.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use torture_workloads::{Profile, Workload};

use crate::cli::{Cli, Command, RunArgs};
use crate::exit_code;
use crate::export::{Summary, TrialsCsv};
use crate::options::RunOptions;
use crate::outcome::Outcome;
use crate::progress::Progress;
use crate::scheduler;

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

fn usage_error(msg: &str) -> i32 {
    eprintln!("torture: {msg}");
    exit_code::USAGE
}

fn run(args: RunArgs, command_line: String) -> i32 {
    let opts = match RunOptions::validate(args, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    if let Err(e) = std::fs::create_dir_all(&opts.out_dir) {
        return usage_error(&format!(
            "cannot create --out {}: {e}; choose another --out",
            opts.out_dir.display()
        ));
    }
    let trials_path = opts.out_dir.join("trials.csv");
    let mut csv = match TrialsCsv::create(&trials_path) {
        Ok(c) => c,
        Err(e) => {
            return usage_error(&format!(
                "cannot write {}: {e}; choose another --out",
                trials_path.display()
            ))
        }
    };
    let total = opts.total_trials();
    eprintln!(
        "torture: {} trials ({} per profile × {} profile(s)), workload {}, {} jobs, seed {}",
        total,
        opts.iterations,
        opts.profiles.len(),
        opts.workload.name(),
        opts.jobs,
        opts.seed
    );
    let mut summary = Summary::with_profile_order(opts.profiles.iter().map(|p| p.name.clone()));
    // The bar is made after the slots are forked (inside the first record), never before.
    let mut progress: Option<Progress> = None;
    let show_progress = opts.progress;
    let result = scheduler::run(&opts, 0..total, &mut |record| {
        csv.append(&record)?;
        summary.add(&record);
        progress
            .get_or_insert_with(|| Progress::new(total, show_progress))
            .update(&summary);
        Ok(())
    });
    if let Some(p) = &progress {
        p.finish();
    }
    let summary_path = opts.out_dir.join("summary.csv");
    let summary_written = summary.write_csv(&summary_path);
    let end = match result {
        Ok(end) => end,
        Err(e) => {
            eprintln!("torture: the run stopped: {e}");
            print!("{}", summary.render_table());
            return exit_code::LAB_ERROR;
        }
    };
    print!("{}", summary.render_table());
    let rate = summary.trials() as f64 / end.elapsed.as_secs_f64().max(1e-9);
    println!(
        "\n{} trials in {:.1}s ({rate:.0} trials/s), seed {}",
        summary.trials(),
        end.elapsed.as_secs_f64(),
        opts.seed
    );
    println!(
        "reproduce: {} --seed {}",
        strip_seed(&opts.command_line),
        opts.seed
    );
    println!("results:   {}", trials_path.display());
    if let Err(e) = summary_written {
        eprintln!("torture: could not write {}: {e}", summary_path.display());
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
        println!("interrupted: {} of {total} trials ran", summary.trials());
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
