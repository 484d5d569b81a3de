//! Running a validated run: open (or resume) OUT under its lock, hand trial indices to the
//! scheduler, record each finished trial (a full disk stops the run as the lab's error, evidence is
//! checked and capped), then the summary, JUnit and the exit code.

use std::collections::BTreeSet;

use crate::exit_code;
use crate::lab::{plan, scheduler, space};
use crate::options::RunOptions;
use crate::output::out_dir;
use crate::output::progress::Progress;
use crate::output::{junit, trials_csv, Summary, TrialsCsv};
use crate::verify::outcome::{Finished, Outcome, TrialRecord, Verdict};
use std::path::Path;

/// Runs `opts` and returns the exit code: the checks before anything is written, OUT opened (or
/// resumed and tidied), the trials recorded as they finish ([`Collect`]), then the summary, the
/// reports and the exit code ([`conclude`]).
pub fn run_validated(opts: RunOptions) -> i32 {
    if let Err(code) = preflight(&opts) {
        return code;
    }
    let mut summary = Summary::with_profile_order(opts.profiles.iter().map(|p| p.name.clone()));
    let mut done = BTreeSet::new();
    let mut failures: u64 = 0;
    let opened = if opts.resume {
        open_to_resume(&opts, &mut done, &mut summary, &mut failures)
    } else {
        start_fresh(&opts)
    };
    let (_lock, csv) = match opened {
        Ok(x) => x,
        Err((code, msg)) => {
            eprintln!("torture: {}", crate::reproduce::printable(&msg));
            return code;
        }
    };
    let (kept, budget_left) = match keep_finished_only(&opts, &done) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let already = done.len() as u64;
    let planned = opts.planned_trials();
    let to_run = planned.map(|p| p.saturating_sub(already));
    let used = if opts.resume {
        out_dir::elapsed(&opts.out_dir)
    } else {
        std::time::Duration::ZERO
    };
    let budget = opts.mode.duration().map(|d| d.saturating_sub(used));
    announce(&opts, to_run, budget, used, already);
    let started = std::time::Instant::now();
    let deadline = budget.map(|d| started + d);
    let indices = plan::indices(opts.total_trials(), opts.partition, done);
    let mut collect = Collect {
        opts: &opts,
        csv,
        summary,
        failures,
        kept,
        budget_left,
        stop: None,
        never_fired: Vec::new(),
        progress: None,
        to_run,
        budget,
        used,
        started,
        last_saved: started,
    };
    let result = scheduler::run(&opts, indices, deadline, &mut |f| collect.take(f));
    if let Some(p) = &collect.progress {
        p.finish();
    }
    if budget.is_some() {
        out_dir::save_elapsed(&opts.out_dir, used + started.elapsed());
    }
    conclude(&opts, collect, result, already)
}

/// Before anything is written: `--junit`'s file can be made, the scratch disk has room.
fn preflight(opts: &RunOptions) -> Result<(), i32> {
    if let Err(msg) = check_junit(opts.junit.as_deref(), &opts.out_dir) {
        eprintln!("torture: {}", crate::reproduce::printable(&msg));
        return Err(exit_code::USAGE);
    }
    if let Some(free) =
        crate::fsio::free_bytes(&opts.work_base).filter(|&f| f < crate::fsio::START_SPACE)
    {
        eprintln!(
            "torture: the lab's scratch disk is full: --dir {} has {} free, the lab needs at least {}; free space or point --dir at a larger file system",
            opts.work_base.display(),
            crate::fsio::human(free),
            crate::fsio::human(crate::fsio::START_SPACE)
        );
        return Err(exit_code::LAB_ERROR);
    }
    Ok(())
}

/// Evidence already kept: the folders of finished trials (counted against the caps). A folder
/// without a row belongs to a trial that runs again, so it goes; crash-state rows likewise
/// (issue 20 R1).
fn keep_finished_only(
    opts: &RunOptions,
    done: &BTreeSet<u64>,
) -> Result<(u64, EvidenceBudget), i32> {
    let mut kept: u64 = 0;
    let mut budget_left = EvidenceBudget::new(opts.max_evidence_bytes);
    for e in std::fs::read_dir(opts.out_dir.join("failures"))
        .into_iter()
        .flatten()
        .flatten()
    {
        match e.file_name().to_string_lossy().parse::<u64>() {
            Ok(i) if done.contains(&i) => {
                kept += 1;
                budget_left.resumed(i, &e.path());
            }
            _ => {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if opts.resume {
        if let Err(e) = crate::writers::program::states::keep_finished(&opts.out_dir, done) {
            eprintln!(
                "torture: --resume: cannot tidy {}: {e}",
                opts.out_dir
                    .join(crate::writers::program::states::FILE)
                    .display()
            );
            return Err(exit_code::LAB_ERROR);
        }
    }
    Ok((kept, budget_left))
}

/// The run's first line: how many trials (or for how long), profiles, workload, jobs, seed.
fn announce(
    opts: &RunOptions,
    to_run: Option<u64>,
    budget: Option<std::time::Duration>,
    used: std::time::Duration,
    already: u64,
) {
    crate::output::chatter(format_args!(
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
    ));
}

/// What the parent keeps as trials finish: the CSV, the summary, the evidence caps, why the run
/// stopped early, the progress bar.
struct Collect<'a> {
    opts: &'a RunOptions,
    csv: TrialsCsv,
    summary: Summary,
    failures: u64,
    kept: u64,
    budget_left: EvidenceBudget,
    stop: Option<String>,
    never_fired: Vec<String>,
    progress: Option<Progress>,
    to_run: Option<u64>,
    budget: Option<std::time::Duration>,
    used: std::time::Duration,
    started: std::time::Instant,
    last_saved: std::time::Instant,
}

impl Collect<'_> {
    /// One finished trial: a full scratch disk or unsaved evidence stops the run (the trial runs
    /// again on resume); else its evidence is capped, its crash states and then its row written.
    fn take(&mut self, finished: Finished) -> std::io::Result<()> {
        let opts = self.opts;
        let Finished { mut record, states } = finished;
        let failures_dir = opts.out_dir.join("failures");
        let trials_path = opts.out_dir.join("trials.csv");
        let (stop, summary, csv) = (&mut self.stop, &mut self.summary, &mut self.csv);
        let (failures, kept, budget_left) =
            (&mut self.failures, &mut self.kept, &mut self.budget_left);
        let evidence = failures_dir.join(record.iteration.to_string());
        let halt = |stop: &mut Option<String>, msg: String| {
            let _ = std::fs::remove_dir_all(&evidence);
            *stop = Some(msg);
            Err(std::io::Error::other("stopped"))
        };
        // A full scratch disk decides nothing about SQLite: stop, and the trial runs again on resume.
        if let Some(reason) = space::scratch_full(&record, opts.faults.fault, &opts.work_base) {
            return halt(stop, reason);
        }
        if record.outcome != Outcome::Intact {
            // Its evidence is complete before its row is written, or the trial runs again.
            let note = std::fs::read_to_string(evidence.join("trial.json")).unwrap_or_default();
            if evidence.is_dir() && serde_json::from_str::<serde_json::Value>(&note).is_err()
                || record.detail.contains("evidence not saved")
            {
                let free =
                    crate::fsio::free_bytes(&opts.out_dir).map_or("?".into(), crate::fsio::human);
                return halt(
                    stop,
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
            *failures += 1;
            if evidence.is_dir() {
                match budget_left.admit(&mut record, &evidence, *kept < opts.max_evidence) {
                    Ok(true) => *kept += 1,
                    Ok(false) => {}
                    Err(e) => {
                        return halt(
                            stop,
                            format!("cannot cap the evidence in {}: {e}", evidence.display()),
                        )
                    }
                }
            }
        }
        if let Some(n) = fault_never_fired(&record.kill_point, &record.detail) {
            self.never_fired.push(n);
        }
        // The trial's crash states before its row: a trial is finished once its row is written,
        // and `--resume` drops the states of unfinished ones.
        if !states.is_empty() {
            if let Err(e) = crate::writers::program::states::append(&opts.out_dir, &states) {
                return halt(
                    stop,
                    format!(
                        "cannot write {} ({e}; {} free)",
                        opts.out_dir
                            .join(crate::writers::program::states::FILE)
                            .display(),
                        crate::fsio::free_bytes(&opts.out_dir)
                            .map_or("?".into(), crate::fsio::human)
                    ),
                );
            }
        }
        if let Err(e) = csv.append(&record) {
            return halt(
                stop,
                format!(
                    "cannot write {} ({e}; {} free)",
                    trials_path.display(),
                    crate::fsio::free_bytes(&opts.out_dir).map_or("?".into(), crate::fsio::human)
                ),
            );
        }
        summary.add(&record);
        let (to_run, show) = (self.to_run, opts.progress);
        self.progress
            .get_or_insert_with(|| Progress::new(to_run, show))
            .update(summary);
        if self.budget.is_some() && self.last_saved.elapsed().as_millis() >= 500 {
            self.last_saved = std::time::Instant::now();
            out_dir::save_elapsed(&opts.out_dir, self.used + self.started.elapsed());
        }
        Ok(())
    }
}

/// After the last trial: `summary.csv`, JUnit, the table and the closing lines, the exit code.
fn conclude(
    opts: &RunOptions,
    c: Collect<'_>,
    result: std::io::Result<scheduler::RunEnd>,
    already: u64,
) -> i32 {
    let Collect {
        summary,
        failures,
        kept,
        budget_left,
        stop,
        never_fired,
        ..
    } = c;
    let trials_path = opts.out_dir.join("trials.csv");
    let failures_dir = opts.out_dir.join("failures");
    let resume_hint = resume_hint(opts);
    let summary_path = opts.out_dir.join("summary.csv");
    let summary_written = summary.write_csv(&summary_path);
    if summary_written.is_err() {
        let _ = std::fs::remove_file(summary_path.with_extension("csv.tmp"));
    }
    let junit_written = opts
        .junit
        .as_ref()
        .map(|path| junit::write(path, &summary, opts.fail_on_any).map(|()| path));
    let quiet = crate::output::quiet();
    if !quiet {
        print!("{}", summary.render_table());
    }
    if !quiet && opts.exec.as_ref().is_some_and(|e| e.fault.is_some()) {
        if let Some(s) = crate::writers::program::crash_states_summary(&opts.out_dir) {
            println!("{s}");
        }
    }
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
            let free =
                crate::fsio::free_bytes(&opts.work_base).map_or("?".into(), crate::fsio::human);
            eprintln!(
                "torture: the run stopped: {e} (--dir {} has {free} free); continue with: {resume_hint}",
                opts.work_base.display()
            );
            return exit_code::LAB_ERROR;
        }
    };
    let ran = summary.trials() - already;
    let rate = ran as f64 / end.elapsed.as_secs_f64().max(1e-9);
    // A slow program runs a trial in seconds: never print "0 trials/s".
    let rate = match rate {
        r if r >= 10.0 => format!("{r:.0} trials/s"),
        r if r >= 1.0 => format!("{r:.1} trials/s"),
        r if r > 0.0 => format!("{:.1} s/trial", 1.0 / r),
        _ => "no trials".to_string(),
    };
    if !quiet {
        println!(
            "\n{ran} trials in {:.1}s ({rate}), seed {}",
            end.elapsed.as_secs_f64(),
            opts.seed
        );
        if let Some(line) = summary.crash_states_line(end.elapsed) {
            println!("{line}");
        }
        let mut lines = crate::reproduce::lines(&opts.command_line, opts.seed, &opts.out_dir);
        if opts.exec.is_some() {
            // Resuming an exec run runs the program OUT/run.json names: it takes --trust-folder.
            let plain = format!(
                "torture --resume {})",
                crate::reproduce::quote(&opts.out_dir.display().to_string())
            );
            lines = lines.replace(
                &plain,
                &format!("{} --trust-folder)", &plain[..plain.len() - 1]),
            );
        }
        println!("{lines}");
        println!("results:   {}", trials_path.display());
    }
    match junit_written {
        Some(Ok(path)) if !quiet => println!("junit:     {}", path.display()),
        Some(Err(e)) => eprintln!("torture: could not write the JUnit report: {e}"),
        _ => {}
    }
    if !quiet {
        if failures > 0 {
            println!(
                "evidence:  {} ({kept} of {failures} failures kept{})",
                failures_dir.display(),
                budget_left.said(kept < failures, opts.max_evidence)
            );
        }
        if let Some(first) = never_fired.first() {
            println!(
            "note: the fault never fired in {} trial(s), which ran without it: {first} (the operation it was drawn for, or --crash-at, lies beyond what the run made)",
            never_fired.len()
        );
        }
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
            "VIOLATION: {} trial(s) broke a promise its engine documents for their profile; see the evidence folder",
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
            "lab error: {} worker-error trial(s) (verdict lab-error: the lab's; program-error: the program's own failure), {} trial(s) lost with their slot",
            summary.count(Outcome::WorkerError),
            end.lost_trials
        );
        exit_code::LAB_ERROR
    } else {
        exit_code::CLEAN
    }
}

/// `torture --resume OUT` (with `--trust-folder` for exec: a resumed exec run runs the program
/// OUT/run.json names).
fn resume_hint(opts: &RunOptions) -> String {
    format!(
        "torture --resume {}{}",
        crate::reproduce::quote(&opts.out_dir.to_string_lossy()),
        if opts.exec.is_some() {
            " --trust-folder"
        } else {
            ""
        }
    )
}

/// An op-indexed trial whose fault never fired: an injected I/O error the writers never reached, a
/// cut whose fixed `--crash-at` the recording never reached (the recorder's words in `detail`), or
/// (a row of the shim's days) `op=N/T` with N beyond the T operations made.
fn fault_never_fired(kill_point: &str, detail: &str) -> Option<String> {
    if let Some(i) = detail.find("injected: ") {
        let said = &detail[i + "injected: ".len()..];
        if let Some(end) = said.find(" (not reached: the writers made fewer") {
            return Some(format!("{} (the writers made fewer)", &said[..end]));
        }
        if let Some(end) = said.find(" — not reached (the program made fewer)") {
            return Some(format!("{} (the program made fewer)", &said[..end]));
        }
    }
    if let Some(i) = detail.find("--crash-at ") {
        let said = &detail[i..];
        if let Some(end) = said.find(" not reached (the recording has fewer)") {
            return Some(format!(
                "{} (the recording has fewer)",
                &said["--crash-at ".len()..end]
            ));
        }
    }
    let rest = kill_point.strip_prefix("op=")?;
    let (n, rest) = rest.split_once('/')?;
    let t: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let (n, t): (u64, u64) = (n.parse().ok()?, t.parse().ok()?);
    (n > t).then(|| format!("operation {n} of {t}"))
}

/// `--junit`'s file is made before the first trial, so a path that cannot be written is refused
/// at once rather than after the whole run. Its folder must exist, or be OUT (which the run makes).
fn check_junit(junit: Option<&std::path::Path>, out: &std::path::Path) -> Result<(), String> {
    let Some(path) = junit else { return Ok(()) };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        if parent == out {
            return Ok(());
        }
        return Err(format!(
            "--junit {}: the folder {} does not exist; create it or choose another path",
            path.display(),
            parent.display()
        ));
    }
    let existed = std::fs::symlink_metadata(path).is_ok();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| {
            format!(
                "--junit {}: cannot write it ({e}); choose another path",
                path.display()
            )
        })?;
    if !existed {
        // Checked, not kept: the report is written at the end.
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

type Opened = (crate::fsio::OutLock, TrialsCsv);
type Refused = (i32, String);

/// A new run: OUT, its lock, `run.json`, the CSV header. If any of it fails, what this run made
/// goes; a folder another run holds or filled meanwhile is left alone.
fn start_fresh(opts: &RunOptions) -> Result<Opened, Refused> {
    let out = &opts.out_dir;
    let refuse = |e: std::io::Error| refused_out(out, &e, "choose another --out");
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(refuse)?;
    }
    let created = match std::fs::create_dir(out) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(refuse(e)),
    };
    let lock = match crate::fsio::lock(out) {
        Ok(l) => l,
        Err(crate::fsio::LockError::InUse) => return Err((exit_code::USAGE, out_dir::in_use(out))),
        Err(crate::fsio::LockError::Io(e)) => return Err(refuse(e)),
    };
    // Checked before the run started; checked again under the lock, against a run that raced us.
    if std::fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        return Err((
            exit_code::USAGE,
            format!(
                "--out {} already holds results; give a new folder",
                out.display()
            ),
        ));
    }
    let made = (|| {
        let json = serde_json::to_string_pretty(&opts.spec).map_err(std::io::Error::other)?;
        crate::fsio::write_whole(&out.join("run.json"), json.as_bytes())?;
        TrialsCsv::create(&out.join("trials.csv"))
    })();
    match made {
        Ok(csv) => Ok((lock, csv)),
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir_all(out);
            } else {
                for f in ["run.json", "trials.csv"] {
                    let _ = std::fs::remove_file(out.join(f));
                }
            }
            Err(refuse(e))
        }
    }
}

/// A resumed run: lock OUT (refusing a second writer), cut a torn last row, count what is done.
fn open_to_resume(
    opts: &RunOptions,
    done: &mut BTreeSet<u64>,
    summary: &mut Summary,
    failures: &mut u64,
) -> Result<Opened, Refused> {
    let out = &opts.out_dir;
    let lock = match crate::fsio::lock(out) {
        Ok(l) => l,
        Err(crate::fsio::LockError::InUse) => return Err((exit_code::USAGE, out_dir::in_use(out))),
        Err(crate::fsio::LockError::Io(e)) => return Err(refused_out(out, &e, "check the folder")),
    };
    // Under the lock: a planted symlink (`failures` -> elsewhere, `trials.csv` -> a file to grow)
    // would send the run's deletes and writes outside OUT.
    if let Some(link) = out_dir::symlinked_parts(out).first() {
        return Err((exit_code::USAGE, out_dir::symlink_refused(out, link)));
    }
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
    if crate::fsio::is_no_space(e) {
        let free = crate::fsio::free_bytes(out.parent().unwrap_or(out))
            .map_or("?".into(), crate::fsio::human);
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
/// The evidence a run keeps, in bytes and in examples (issue 18 item 4, issue 20 R19): at most
/// `--max-evidence-bytes` in the run and a quarter of it per trial, and one folder per
/// profile × workload × fault whose losses are `expected` (a control's losses are all alike).
struct EvidenceBudget {
    max_bytes: u64,
    kept_bytes: u64,
    /// The first trial of each expected group with a folder: the group's example.
    examples: std::collections::HashMap<(String, String, String), u64>,
    /// Folders not kept because their group already has its example.
    repeats: u64,
    /// Folders not kept for `--max-evidence`.
    over_count: u64,
    /// Folders trimmed, and folders removed whole, for the byte cap.
    trimmed: u64,
    removed: u64,
    dropped_bytes: u64,
}

impl EvidenceBudget {
    fn new(max_bytes: u64) -> EvidenceBudget {
        EvidenceBudget {
            max_bytes,
            kept_bytes: 0,
            examples: Default::default(),
            repeats: 0,
            over_count: 0,
            trimmed: 0,
            removed: 0,
            dropped_bytes: 0,
        }
    }

    fn group(r: &TrialRecord) -> (String, String, String) {
        (r.profile.clone(), r.workload.clone(), r.fault.clone())
    }

    /// Counts a folder kept by the run being resumed.
    fn resumed(&mut self, iteration: u64, folder: &Path) {
        self.kept_bytes += crate::trial::evidence::folder_bytes(folder);
        let note = std::fs::read_to_string(folder.join("trial.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&note) {
            if let Ok(r) = serde_json::from_value::<TrialRecord>(v["record"].clone()) {
                if r.verdict == Verdict::Expected {
                    self.examples.entry(Self::group(&r)).or_insert(iteration);
                }
            }
        }
    }

    /// Keeps, trims or removes the evidence folder of the failed trial `record`; true when a
    /// folder stays. A repeat of an expected loss says in its row where its group's example is.
    fn admit(
        &mut self,
        record: &mut TrialRecord,
        folder: &Path,
        room: bool,
    ) -> std::io::Result<bool> {
        // A group's example is the first expected loss whose folder was kept.
        let expected = record.verdict == Verdict::Expected;
        let example = expected
            .then(|| self.examples.get(&Self::group(record)).copied())
            .flatten()
            .filter(|&first| first != record.iteration);
        if let Some(first) = example {
            self.repeats += 1;
            record.detail.push_str(&format!(
                "; evidence: none kept, an expected loss like failures/{first}, its group's example"
            ));
        } else if !room {
            self.over_count += 1;
        }
        if example.is_some() || !room {
            self.dropped_bytes += crate::trial::evidence::folder_bytes(folder);
            std::fs::remove_dir_all(folder)?;
            return Ok(false);
        }
        let cap = (self.max_bytes / 4).min(self.max_bytes.saturating_sub(self.kept_bytes));
        let c = crate::trial::evidence::cap_folder(folder, cap)?;
        self.kept_bytes += c.kept_bytes;
        self.dropped_bytes += c.dropped_bytes;
        if c.removed {
            self.removed += 1;
            record
                .detail
                .push_str("; evidence: removed by --max-evidence-bytes (its note was unreadable)");
        } else if !c.dropped.is_empty() {
            self.trimmed += 1;
            record.detail.push_str(&format!(
                "; evidence: {} file(s) dropped by --max-evidence-bytes (trial.json lists them)",
                c.dropped.len()
            ));
        }
        if expected && !c.removed {
            self.examples
                .entry(Self::group(record))
                .or_insert(record.iteration);
        }
        Ok(!c.removed)
    }

    /// The summary's words after "K of F failures kept".
    fn said(&self, fewer: bool, max_evidence: u64) -> String {
        let mut parts = Vec::new();
        if self.repeats > 0 {
            parts.push(format!(
                "{} repeated expected loss(es) kept none: one example per profile × workload × fault",
                self.repeats
            ));
        }
        if self.over_count > 0 && fewer {
            parts.push(format!(
                "{} over --max-evidence {max_evidence}",
                self.over_count
            ));
        }
        if self.trimmed + self.removed > 0 {
            parts.push(format!(
                "--max-evidence-bytes {}: {} folder(s) trimmed (trial.json lists the files dropped), {} removed",
                crate::fsio::human(self.max_bytes),
                self.trimmed,
                self.removed
            ));
        }
        if self.dropped_bytes > 0 {
            parts.push(format!(
                "{} of evidence dropped, {} kept",
                crate::fsio::human(self.dropped_bytes),
                crate::fsio::human(self.kept_bytes)
            ));
        }
        parts.iter().map(|p| format!("; {p}")).collect()
    }
}

#[cfg(test)]
mod evidence_budget_tests {
    use super::EvidenceBudget;
    use crate::verify::outcome::{Outcome, TrialRecord, Verdict};

    fn folder(root: &std::path::Path, i: u64) -> std::path::PathBuf {
        let f = root.join(i.to_string());
        std::fs::create_dir_all(&f).unwrap();
        std::fs::write(f.join("trial.json"), r#"{"record": {}}"#).unwrap();
        f
    }

    /// A group's example is a folder that was kept: a first expected loss dropped for
    /// `--max-evidence` is not named by the next one, which becomes the example itself.
    #[test]
    fn an_expected_groups_example_is_a_folder_that_exists() {
        let d = tempfile::tempdir().unwrap();
        let mut b = EvidenceBudget::new(1 << 30);
        let mut first = TrialRecord::for_test("p", Outcome::LostCommit, Verdict::Expected);
        first.iteration = 1;
        let f1 = folder(d.path(), 1);
        assert!(!b.admit(&mut first, &f1, false).unwrap());
        assert!(!f1.exists());
        let mut second = first.clone();
        second.iteration = 2;
        second.detail.clear();
        let f2 = folder(d.path(), 2);
        assert!(b.admit(&mut second, &f2, true).unwrap());
        assert!(
            f2.exists() && !second.detail.contains("failures/1"),
            "{}",
            second.detail
        );
        let mut third = second.clone();
        third.iteration = 3;
        third.detail.clear();
        let f3 = folder(d.path(), 3);
        assert!(!b.admit(&mut third, &f3, true).unwrap());
        assert!(third.detail.contains("like failures/2"), "{}", third.detail);
        // A violation is never a repeat: it keeps its folder.
        let mut v = TrialRecord::for_test("p", Outcome::LostCommit, Verdict::Violation);
        v.iteration = 4;
        let f4 = folder(d.path(), 4);
        assert!(b.admit(&mut v, &f4, true).unwrap() && f4.exists());
    }
}

#[cfg(test)]
mod never_fired_tests {
    use super::fault_never_fired;

    #[test]
    fn an_exec_io_error_the_program_never_reached_is_noted() {
        let d =
            "6 crash states; injected: EIO on the 40th sync — not reached (the program made fewer)";
        assert_eq!(
            fault_never_fired("end", d).as_deref(),
            Some("EIO on the 40th sync (the program made fewer)")
        );
        let fired = "injected: EIO on the 4th sync (1 op(s) failed)";
        assert_eq!(fault_never_fired("end", fired), None);
    }
}
