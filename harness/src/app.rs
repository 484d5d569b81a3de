//! The commands: parse, validate, and dispatch (a run itself is `run.rs`); usage errors as one line.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use torture_workloads::{Profile, Workload};

use crate::cli::{Cli, Command, RunArgs};
use crate::exit_code;
use crate::fsio::private_dir;
use crate::lab::scheduler;
use crate::options::{Defaults, RunOptions};
use crate::output::merge;
use crate::output::report;
use crate::reproduce::{printable, quote as shell_quote, shell_words_str};
use crate::trial::evidence::TrialNote;
use crate::verify::outcome::Outcome;

/// Runs `torture` with these arguments and returns the process exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    // The command line to reproduce a run keeps the version flags (`--sqlite`, `--engine-version`).
    let command_line = shell_words(&crate::engine::versions::as_typed(&args));
    let args = match crate::engine::versions::prepare(args) {
        crate::engine::versions::Prepared::Continue(a) => a,
        crate::engine::versions::Prepared::Exit(code) => return code,
    };
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version: not an error.
            let _ = e.print();
            return exit_code::CLEAN;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let command: Vec<String> = args
                .iter()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .take_while(|a| !a.starts_with('-'))
                .collect();
            return usage_error(&format!(
                "`torture {}` needs a subcommand; see torture {} --help",
                command.join(" "),
                command.join(" ")
            ));
        }
        Err(e) => {
            if let Some(line) = negative_value(&e, &args) {
                return usage_error(&line);
            }
            return usage_error(&one_line(&e.render().to_string()));
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
        Some(Command::Replay {
            failure,
            trust_folder,
            verify_cmd,
            python,
        }) => replay(
            &failure,
            &crate::writers::program::Named {
                trust_folder,
                verify_cmd,
                python,
            },
        ),
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
        Some(Command::Completions { shell }) => {
            let mut script = Vec::new();
            crate::output::manual::completions(shell, &mut script);
            print_all(&script, "the completion script")
        }
        Some(Command::Man { out }) => man(out.as_deref()),
        Some(Command::Exec(args)) => exec(args, command_line),
        Some(Command::Hunt(args)) => hunt(&args),
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

/// Writes `bytes` to stdout; a closed pipe (`torture man | head`) is the reader's choice.
fn print_all(bytes: &[u8], what: &str) -> i32 {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => exit_code::CLEAN,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit_code::CLEAN,
        Err(e) => {
            eprintln!("torture: cannot print {what}: {e}");
            exit_code::LAB_ERROR
        }
    }
}

/// `torture man`: torture.1 on stdout, or every page into `--out DIR`.
fn man(out: Option<&std::path::Path>) -> i32 {
    let Some(dir) = out else {
        let mut page = Vec::new();
        if let Err(e) = crate::output::manual::man_page(&mut page) {
            eprintln!("torture: cannot render the man page: {e}");
            return exit_code::LAB_ERROR;
        }
        return print_all(&page, "the man page");
    };
    match crate::output::manual::man_pages(dir) {
        Ok(pages) => {
            println!("wrote {} man pages in {}", pages.len(), dir.display());
            exit_code::CLEAN
        }
        Err(e) => usage_error(&format!(
            "cannot write the man pages in {}: {e}; give --out a folder you can write",
            dir.display()
        )),
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
        Ok((text, notes)) => {
            for line in notes {
                eprintln!("torture: {line}");
            }
            print!("{text}");
            exit_code::CLEAN
        }
        Err(e) => usage_error(&e.to_string()),
    }
}

/// `torture replay OUT/failures/<iteration>`: re-runs that one trial and compares. The folder is
/// data: nothing it names is executed unless the user names it again (`named`).
fn replay(failure: &std::path::Path, named: &crate::writers::program::Named) -> i32 {
    let note_path = failure.join("trial.json");
    let refuse = |e: &dyn std::fmt::Display| {
        usage_error(&format!(
            "replay: cannot read {} ({e}); give a failure folder a run wrote (OUT/failures/<iteration>)",
            note_path.display()
        ))
    };
    let text = match crate::fsio::read_data_text(&note_path, crate::fsio::MAX_NOTE_BYTES) {
        Ok(t) => t,
        Err(e) => return refuse(&e),
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return refuse(&e),
    };
    // A folder trimmed by --max-evidence-bytes lacks files a re-check compares: never a verdict.
    if let Some(dropped) = crate::trial::evidence::dropped_for_recheck(&value) {
        return usage_error(&format!(
            "replay: {} was trimmed by --max-evidence-bytes (dropped {}), so it cannot be re-checked; run the trial again with a larger --max-evidence-bytes",
            failure.display(),
            printable(&dropped)
        ));
    }
    if value.get("kind").and_then(|k| k.as_str()) == Some("exec") {
        // A program's timing is its own: an exec trial is re-checked on its saved files instead.
        return crate::writers::program::recheck(failure, named);
    }
    if named.verify_cmd.is_some() || named.python.is_some() {
        return usage_error(
            "replay: --verify-cmd and --python re-check a `torture exec` trial; this folder holds a built-in trial",
        );
    }
    let note: TrialNote = match serde_json::from_value(value) {
        Ok(n) => n,
        Err(e) => return refuse(&e),
    };
    // A built-in trial never runs a program: a note that carries one was not written by torture.
    if let Some(exec) = &note.run.exec {
        return usage_error(&format!(
            "replay: {} names a program to run ({}) but is not an exec trial's note; replay runs nothing a folder names: give a failure folder a run wrote",
            note_path.display(),
            shell_words_str(&exec.command)
        ));
    }
    if let Some(name) = &note.run.scenario {
        if crate::writers::scenario::profiles(name).is_none() {
            return usage_error(&format!(
                "replay: {}: {}; give a trial.json as torture wrote it",
                note_path.display(),
                crate::writers::scenario::unknown(name)
            ));
        }
    }
    if note.run.scenario.is_some() && note.record.fault == "power-loss" {
        return usage_error(&format!(
            "replay: {} is a scenario power-loss trial: its threads and processes interleave anew on every run, so its recording cannot be replayed; re-run the scenario with --seed {} to sample it again (the evidence folder holds the worst state's files and the recorder's log, ops.log)",
            note.record.profile, note.master_seed
        ));
    }
    // The trial ran on one SQLite; replaying it on another compares two libraries, not one trial.
    let here = crate::engine::version();
    let was = &note.record.sqlite_version;
    if !was.is_empty() && *was != here && !was.contains("sqlcipher") && !here.contains("sqlcipher")
    {
        // Every word of the suggested command is quoted: the version comes from the folder.
        return usage_error(&format!(
            "replay: {} ran on SQLite {}, this torture runs {here}; replay it with `torture --sqlite {} replay {}`",
            failure.display(),
            printable(was),
            shell_quote(was),
            shell_quote(&failure.to_string_lossy())
        ));
    }
    rerun_and_compare(failure, &note, &note_path)
}

/// A built-in trial's note, checked: run that one trial again in a private folder and compare its
/// outcome (and, where the recording repeats exactly, its crashed files) with the recorded ones.
fn rerun_and_compare(
    failure: &std::path::Path,
    note: &TrialNote,
    note_path: &std::path::Path,
) -> i32 {
    let scratch = match tempfile::Builder::new()
        .prefix("torture-replay-")
        .permissions(private_dir())
        .tempdir()
    {
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
        got = Some(r.record);
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
    // Several writers interleave anew on every run: their recording is not the same twice.
    let exact = exact && note.record.processes * note.record.connections == 1;
    let mut same = now.outcome == was.outcome;
    if exact && now.outcome != Outcome::Intact {
        let replayed = out.join("failures").join(index.to_string());
        for suffix in crate::engine::SIDECARS {
            let name = format!("trial.db{suffix}");
            // The folder's file is data: a regular file, not through a symlink, capped.
            let a = crate::fsio::read_data(&failure.join(&name), MAX_DB_BYTES).ok();
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

/// The largest database file of an evidence folder that replay compares (a trial's database is
/// far smaller).
const MAX_DB_BYTES: u64 = 4 << 30;

/// clap reads `--jobs -1` as an unknown flag `-1`: say which flag got a negative number instead.
fn negative_value(e: &clap::Error, args: &[OsString]) -> Option<String> {
    if e.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let bad = match e.get(clap::error::ContextKind::InvalidArg)? {
        clap::error::ContextValue::String(s) => s.clone(),
        _ => return None,
    };
    let number = bad.strip_prefix('-')?;
    if number.is_empty() || number.parse::<f64>().is_err() {
        return None;
    }
    let at = args.iter().position(|a| a.to_str() == Some(bad.as_str()))?;
    let flag = args.get(at.checked_sub(1)?)?.to_str()?;
    flag.starts_with('-').then(|| {
        format!(
            "{flag} {bad}: a negative number; give 0 or more (see torture --help for the range)"
        )
    })
}

/// A clap error as one line: its message and tip, without the usage block.
fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    let mut in_usage = false;
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") {
            in_usage = true;
        }
        if line.is_empty() {
            in_usage = false;
            continue;
        }
        if in_usage || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out + "; see torture --help"
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("torture: {}", printable(msg));
    exit_code::USAGE
}

/// `torture exec`'s flags as its options, checked (the program found, its Python ready); `Err` is
/// one line naming the fix.
fn exec_options(
    args: &crate::cli::ExecArgs,
) -> Result<crate::writers::program::ExecOptions, String> {
    let mut exec = crate::writers::program::ExecOptions::new(args.command.clone());
    exec.shell = args.shell;
    exec.seed_db = args.seed_db.clone();
    exec.recovered_sql = args.recovered_sql.clone();
    exec.verify_sql = args.verify_sql.clone();
    exec.verify_cmd = args.verify_cmd.clone();
    exec.journal_mode = args.journal_mode.clone();
    exec.synchronous = args.synchronous.as_deref().map(str::to_ascii_lowercase);
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
            return Err(format!(
                "--after-kill {other}: give delete-wal, delete-journal or db-only"
            ))
        }
    };
    exec.engine = match crate::writers::program::Engine::parse(&args.engine) {
        Some(e) => e,
        None => {
            return Err(format!(
                "unknown engine `{}`; choose sqlite, duckdb or libsql",
                args.engine
            ))
        }
    };
    if let Some(window) = &args.kill_after {
        match crate::faults::kill_point::KillPolicy::parse(window, &args.kill_delay) {
            Ok(crate::faults::kill_point::KillPolicy::AfterTime { window }) => {
                exec.kill_window = Some(window)
            }
            Ok(crate::faults::kill_point::KillPolicy::AfterAcks { commits, delay }) => {
                exec.kill_acks = Some(commits);
                exec.kill_delay = delay;
                exec.kill_window = Some((std::time::Duration::ZERO, delay.1));
            }
            Err(e) => return Err(e),
        }
    }
    exec.instances = args.instances;
    exec.kill_one = args.kill == "one";
    exec.keep_evidence = args.keep_evidence;
    if let Some(d) = &args.calibrate_for {
        match crate::faults::kill_point::parse_duration(d) {
            Ok(d) => exec.calibrate_for = Some(d),
            Err(e) => return Err(format!("--calibrate-for: {e}")),
        }
    }
    // `--fault sigkill` is the default said out loud: the program is killed, nothing is recorded.
    let recorded_fault = args
        .fault
        .as_deref()
        .filter(|f| !f.eq_ignore_ascii_case("sigkill"));
    if let Some(kind) = recorded_fault {
        match crate::writers::program::ExecFault::from_flags(
            kind,
            args.sector_size,
            args.lying_disk,
            args.no_powersafe_overwrite,
            args.crash_states.as_deref(),
            args.max_states.as_deref(),
            args.fail_at.as_deref(),
        )
        .and_then(|mut f| {
            f.fsync_commits_names = args.fsync_commits_names;
            f.validate().map(|()| f)
        }) {
            Ok(f) => exec.fault = Some(f),
            Err(e) => return Err(e),
        }
    } else if args.sector_size.is_some()
        || args.lying_disk
        || args.no_powersafe_overwrite
        || args.fsync_commits_names
        || args.crash_states.is_some()
        || args.max_states.is_some()
        || args.fail_at.is_some()
    {
        return Err("--sector-size, --lying-disk, --no-powersafe-overwrite, --fsync-commits-names, --crash-states, --max-states and --fail-at need --fault power-loss, kill-at-op, io-error or disk-full".into());
    }
    exec.validate()
        .and_then(|()| match (exec.shell, exec.command.first()) {
            (false, Some(program)) => crate::process::find_program(program),
            _ => Ok(()),
        })
        .and_then(|()| crate::writers::program::python_ready(&exec))?;
    Ok(exec)
}

/// Before an exec run: `--fault` runs the probe recording; plain SIGKILL without `--kill-after`
/// calibrates the kill window. Returns the calibration run's kept folder, if it kept one (for
/// what the run says after its summary), or the exit code after one line.
fn calibrate_or_probe(
    exec: &mut crate::writers::program::ExecOptions,
    args: &crate::cli::ExecArgs,
    opts: &RunOptions,
) -> Result<Option<std::path::PathBuf>, i32> {
    let mut held = None;
    if exec.fault.is_some() {
        let timeout = match crate::faults::kill_point::parse_duration(&args.calibration_timeout) {
            Ok(t) => t,
            Err(e) => return Err(usage_error(&format!("--calibration-timeout: {e}"))),
        };
        let probed = tempfile::Builder::new()
            .prefix("torture-probe-")
            .permissions(private_dir())
            .tempdir_in(&opts.work_base)
            .map_err(|e| (exit_code::USAGE, format!("cannot make a probe folder: {e}")))
            .and_then(|d| {
                // Owned like a run's scratch folder: a later run sweeps it if this one is killed.
                let _ = scheduler::claim(d.path());
                crate::writers::program::probe_recording(exec, d.path(), timeout).map_err(
                    |(code, e)| match crate::lab::space::scratch_full_before_the_run(
                        d.path(),
                        &opts.work_base,
                        &e,
                    ) {
                        Some(full) => (exit_code::LAB_ERROR, full),
                        None => (code, e),
                    },
                )
            });
        match probed {
            Ok(line) => eprintln!("torture: {line}"),
            Err((code, e)) => {
                eprintln!("torture: {e}");
                return Err(code);
            }
        }
    } else if exec.kill_window.is_none() {
        let timeout = match crate::faults::kill_point::parse_duration(&args.calibration_timeout) {
            Ok(t) => t,
            Err(e) => return Err(usage_error(&format!("--calibration-timeout: {e}"))),
        };
        let scratch = match tempfile::Builder::new()
            .prefix("torture-calibrate-")
            .permissions(private_dir())
            .tempdir_in(&opts.work_base)
        {
            Ok(d) => d,
            Err(e) => {
                return Err(usage_error(&format!(
                    "cannot make a calibration folder: {e}"
                )))
            }
        };
        let _ = scheduler::claim(scratch.path());
        match crate::writers::program::calibrate_report(exec, scratch.path(), timeout, opts) {
            Ok(c) => {
                eprintln!("torture: calibrated: {c}");
                if let Some(line) = c.finding_line() {
                    eprintln!("torture: {line}");
                }
                held = c.held.clone();
                *exec = exec.clone().with_calibration(&c);
            }
            Err(e) => {
                return Err(
                    match crate::lab::space::scratch_full_before_the_run(
                        scratch.path(),
                        &opts.work_base,
                        &e,
                    ) {
                        Some(full) => {
                            eprintln!("torture: {full}");
                            exit_code::LAB_ERROR
                        }
                        None => usage_error(&e),
                    },
                );
            }
        }
    }
    Ok(held)
}

/// `torture exec [...] -- COMMAND`: validate, calibrate the kill window once, then the same run
/// loop, CSV, summary and verdicts as a profile run.
fn exec(args: Box<crate::cli::ExecArgs>, command_line: String) -> i32 {
    let mut exec = match exec_options(&args) {
        Ok(e) => e,
        Err(e) => return usage_error(&e),
    };
    let mut run_args = default_run_args();
    run_args.common = args.common.clone();
    crate::output::set_quiet(args.common.quiet);
    let mut opts = match RunOptions::validate_with(run_args, Defaults::EXEC, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    let calibration_held = match calibrate_or_probe(&mut exec, &args, &opts) {
        Ok(held) => held,
        Err(code) => return code,
    };
    if exec.kill_window.is_some_and(|w| w.1 >= opts.trial_timeout) {
        return usage_error("the kill window ends after --trial-timeout; raise --trial-timeout");
    }
    opts.spec.profiles[0].name = exec.profile_name();
    opts.spec.exec = Some(exec);
    let out_dir = opts.out_dir.clone();
    let code = crate::run::run_validated(opts);
    crate::output::after_run::after_run(&out_dir, calibration_held.as_deref(), code)
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
    crate::output::set_quiet(args.common.quiet);
    let mut opts = match RunOptions::validate_with(run_args, Defaults::SCENARIO, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    opts.spec.profiles = profiles;
    opts.spec.scenario = Some(args.name);
    crate::run::run_validated(opts)
}

/// A plain run's arguments with every default, for the subcommands that build on a run.
fn default_run_args() -> RunArgs {
    Cli::try_parse_from(["torture"])
        .expect("the defaults parse")
        .run
}

fn run(args: RunArgs, command_line: String) -> i32 {
    crate::output::set_quiet(args.common.quiet);
    if let Err(e) = crate::options::check_fault_flags(&args) {
        return usage_error(&e.0);
    }
    let opts = match RunOptions::validate(args, command_line) {
        Ok(o) => o,
        Err(e) => return usage_error(&e.0),
    };
    crate::run::run_validated(opts)
}

/// The command line as one string, quoting words that need it.
fn shell_words(args: &[OsString]) -> String {
    args.iter()
        .map(|a| crate::reproduce::quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn hunt(args: &crate::cli::HuntArgs) -> i32 {
    let budget = match crate::faults::kill_point::parse_duration(&args.budget) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            eprintln!("torture: --budget must be more than 0 (e.g. 10m)");
            return crate::exit_code::USAGE;
        }
        Err(e) => {
            eprintln!("torture: --budget {}: {e} (e.g. 90s, 10m)", args.budget);
            return crate::exit_code::USAGE;
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    crate::writers::hunt::hunt(&crate::writers::hunt::HuntOptions {
        engine: args.engine.clone(),
        budget,
        seed,
        fault: args.fault.clone(),
        out: args.out.clone(),
        trials: args.trials,
        transactions: args.transactions,
        weights: args.weights.clone(),
        resume: args.resume,
        max_shrink_runs: args.max_shrink_runs,
    })
}
