//! `torture hunt`: crash bugs nobody wrote a trigger for. Generated transaction programs
//! (`workloads/hunt/hunt.py`, embedded in this binary) run as exec programs under a fault; a
//! program that fails is shrunk while the failure keeps reproducing, and filed in a bug base.
//!
//! One program is: `hunt.py gen` (seeded grammar, weights from `--weights`) → `hunt.py validate`
//! (one uncrashed run on a fresh database of the same engine: statements the engine rejects are
//! dropped, and the model — the content hash after every prefix of commits — is stored) → `torture
//! exec --fault F` with `--recovered-sql 'SELECT k FROM hunt_acks'` (every ack survived) and
//! `--verify-cmd 'hunt.py oracle'` (integrity, index lookups agree with scans, the content equals a
//! prefix of the committed transactions). A run that exits 1 (a violation) is a finding.
//!
//! Shrinking drops transactions, then statements, one at a time while the finding keeps
//! reproducing — one of the candidate's crash states fails with the finding's signature — with the
//! same exec seed (deterministic: the same program and seed give the same recording's states up to
//! the program's own timing), and logs each step. The bug base: `OUT/<engine>-<version>/<id>/`
//! with `program.json`, `shrunk.json` and `shrunk-model.json`, `seed`, `verdict.txt`, the crash
//! states' files (`crash-state/`, `shrunk-crash-state/`), `hunt.py` and `repro.sh` (needs only
//! the engine's Python package at the version found), `shrink.log`, and `report.md` (a draft
//! upstream report).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::exit_code;

/// The generator, driver and oracle, as the binary carries them.
const HUNT_PY: &str = include_str!("../../../workloads/hunt/hunt.py");

pub struct HuntOptions {
    pub engine: String,
    pub budget: Duration,
    pub seed: u64,
    pub fault: String,
    pub out: PathBuf,
    pub trials: u64,
    pub transactions: u32,
    pub weights: Option<PathBuf>,
    pub resume: bool,
    pub max_shrink_runs: u32,
}

/// Checks the options; `Err` is one line naming the fix (exit 2).
pub fn validate(o: &HuntOptions) -> Result<(), String> {
    if !["sqlite", "duckdb"].contains(&o.engine.as_str()) {
        return Err(format!(
            "--engine {}: hunt drives sqlite or duckdb (through their Python packages)",
            o.engine
        ));
    }
    if !["power-loss", "kill-at-op", "sigkill"].contains(&o.fault.as_str()) {
        return Err(format!(
            "--fault {}: hunt runs under power-loss, kill-at-op or sigkill",
            o.fault
        ));
    }
    if o.trials == 0 || o.transactions == 0 {
        return Err("--trials and --transactions are at least 1".into());
    }
    if let Some(w) = &o.weights {
        if !w.is_file() {
            return Err(format!(
                "--weights {}: no such file; give a TOML file of weights (workloads/hunt/weights.toml)",
                w.display()
            ));
        }
    }
    let state = o.out.join("hunt.json");
    if state.exists() && !o.resume {
        return Err(format!(
            "--out {} already holds a hunt; continue it with --resume, or give a new folder",
            o.out.display()
        ));
    }
    if o.resume && !state.exists() {
        return Err(format!(
            "--resume: {} holds no hunt (no hunt.json); start one without --resume",
            o.out.display()
        ));
    }
    Ok(())
}

/// What the hunt has done, kept in `OUT/hunt.json` after every program (for `--resume`).
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct State {
    seed: u64,
    engine: String,
    fault: String,
    /// The next program's index.
    next: u64,
    programs: u64,
    crash_states: u64,
    findings: u64,
    /// Findings like one already filed (same [`signature`]): counted, not shrunk or filed again.
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    signatures: Vec<String>,
}

fn python(args: &[&std::ffi::OsStr]) -> Result<std::process::Output, String> {
    Command::new("python3")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))
}

fn engine_version(engine: &str) -> Result<String, String> {
    let code = match engine {
        "sqlite" => "import sqlite3; print(sqlite3.sqlite_version)",
        _ => "import duckdb; print(duckdb.__version__)",
    };
    let o = python(&["-c".as_ref(), code.as_ref()])?;
    if !o.status.success() {
        return Err(format!(
            "python3 cannot import the {engine} package: `pip install {engine}` (or --engine-version V for a managed one)"
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The result of one exec run of a program.
struct Outcome {
    violation: bool,
    states: u64,
    /// The first violating trial: its outcome and detail, its evidence folder, and the commits
    /// acknowledged before its worst state's cut.
    finding: Option<(String, PathBuf, u64)>,
    /// The [`signature`] of every violating crash state (and of each violating trial's verdict):
    /// what a shrink candidate must still show to count as the same failure.
    signatures: Vec<String>,
}

/// Runs `program` under the fault with `seed`: `torture exec` in a fresh folder `out`.
fn run_program(
    o: &HuntOptions,
    script: &Path,
    program: &Path,
    seed: u64,
    out: &Path,
) -> Result<Outcome, (i32, String)> {
    let _ = std::fs::remove_dir_all(out);
    // This very binary, even if a rebuild replaced its file meanwhile.
    let exe = Path::new("/proc/self/exe");
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let mut cmd = Command::new(exe);
    cmd.args(["exec", "--no-progress", "-n"])
        .arg(o.trials.to_string())
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(out);
    if o.fault != "sigkill" {
        // Half the exec default per trial: a program's states are many and alike, and the
        // hunt's budget is better spent on more programs.
        cmd.args(["--fault", &o.fault, "--max-states", "32"]);
    }
    if o.engine == "duckdb" {
        // DuckDB never fsyncs its folder, so under the strict model its new files may vanish
        // whole at a power cut: known (docs/exec-faults.md), and a finding every program would
        // repeat, masking the rest. The hunt looks past it with the ext4-like model.
        cmd.args(["--engine", "duckdb"]);
        if o.fault == "power-loss" {
            cmd.arg("--fsync-commits-names");
        }
    } else {
        cmd.args(["--synchronous", "full", "--journal-mode", "wal"]);
    }
    cmd.args(["--recovered-sql", "SELECT k FROM hunt_acks", "--verify-cmd"])
        .arg(format!(
            "python3 {} oracle {} {{db}}",
            quote(script),
            quote(program)
        ))
        .args(["--", "python3"])
        .arg(script)
        .arg("run")
        .arg(program)
        .arg("{db}")
        .stdin(Stdio::null());
    let r = cmd.output().map_err(|e| {
        (
            exit_code::LAB_ERROR,
            format!("cannot run torture exec: {e}"),
        )
    })?;
    let code = r.status.code().unwrap_or(exit_code::LAB_ERROR);
    if code != exit_code::CLEAN && code != exit_code::VIOLATION && code != exit_code::USAGE {
        // Never "nothing found" for a program that was not tested.
        let said = String::from_utf8_lossy(&r.stdout);
        let err = String::from_utf8_lossy(&r.stderr);
        let last = |t: &str| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string()
        };
        return Err((
            exit_code::LAB_ERROR,
            format!(
                "torture exec could not test the program (exit {code}; results in {}): {} {}",
                out.display(),
                last(&said),
                last(&err)
            ),
        ));
    }
    if code == exit_code::USAGE {
        let said = String::from_utf8_lossy(&r.stderr);
        return Err((
            exit_code::LAB_ERROR,
            format!(
                "a generated program was refused by exec (the generator's fault): {}",
                said.trim()
            ),
        ));
    }
    let mut states = 0;
    let mut finding = None;
    let mut signatures = Vec::new();
    for_each_row(&out.join("crash-states.csv"), |get| {
        if get("verdict") == "violation" {
            let s = state_signature(&get("outcome"), &get("detail"));
            if !signatures.contains(&s) {
                signatures.push(s);
            }
        }
    });
    for_each_row(&out.join("trials.csv"), |get| {
        states += get("crash_states").parse::<u64>().unwrap_or(0);
        if get("verdict") == "violation" {
            signatures.push(signature(&format!("{}: {}", get("outcome"), get("detail"))));
        }
        if finding.is_none() && get("verdict") == "violation" {
            let it = get("iteration");
            let ev = ["failures", "evidence"]
                .iter()
                .map(|d| out.join(d).join(&it))
                .find(|p| p.is_dir())
                .unwrap_or_default();
            finding = Some((
                format!("{}: {}", get("outcome"), get("detail")),
                ev,
                get("acked_commits").parse().unwrap_or(0),
            ));
        }
    });
    Ok(Outcome {
        violation: code == exit_code::VIOLATION && finding.is_some(),
        states,
        finding,
        signatures,
    })
}

/// Calls `f` for every row of a CSV file with a getter by column name ("" when absent); a missing
/// or unreadable file has no rows.
fn for_each_row(path: &Path, mut f: impl FnMut(&dyn Fn(&str) -> String)) {
    let Ok(mut rd) = csv::Reader::from_path(path) else {
        return;
    };
    let h = rd.headers().cloned().unwrap_or_default();
    for rec in rd.records().flatten() {
        let get = |n: &str| {
            h.iter()
                .position(|x| x == n)
                .and_then(|i| rec.get(i))
                .unwrap_or("")
                .to_string()
        };
        f(&get);
    }
}

fn read_program(p: &Path) -> Result<serde_json::Value, String> {
    let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))
}

/// The folder a shrink candidate runs in, beside the program's own `run/`.
const CANDIDATE_RUN: &str = "candidate-run";

/// Re-validates a candidate (its model changes with its transactions) and runs it.
fn try_candidate(
    o: &HuntOptions,
    script: &Path,
    work: &Path,
    candidate: &serde_json::Value,
    seed: u64,
    want: &str,
) -> Result<Option<Outcome>, (i32, String)> {
    if candidate["transactions"]
        .as_array()
        .is_none_or(|t| t.is_empty())
    {
        return Ok(None);
    }
    let raw = work.join("candidate-raw.json");
    let valid = work.join("candidate.json");
    std::fs::write(&raw, candidate.to_string())
        .map_err(|e| (exit_code::LAB_ERROR, e.to_string()))?;
    let v = python(&[
        script.as_os_str(),
        "validate".as_ref(),
        raw.as_os_str(),
        valid.as_os_str(),
    ])
    .map_err(|e| (exit_code::LAB_ERROR, e))?;
    if !v.status.success() {
        return Ok(None);
    }
    // A candidate exec refuses or cannot test (nothing acknowledged, say) does not reproduce. It
    // runs in a folder of its own: the program's run folder holds the finding's evidence until
    // it is filed.
    // A candidate that fails otherwise (another bug, or one that needs less) is not the finding.
    Ok(
        run_program(o, script, &valid, seed, &work.join(CANDIDATE_RUN))
            .ok()
            .filter(|r| r.violation && r.signatures.iter().any(|s| s == want)),
    )
}

/// Drops transactions, then statements, one at a time while the finding reproduces. Returns the
/// smallest program and the log of its steps.
fn shrink(
    o: &HuntOptions,
    script: &Path,
    work: &Path,
    program: &serde_json::Value,
    seed: u64,
    want: &str,
    log: &mut Vec<String>,
) -> Result<serde_json::Value, (i32, String)> {
    let mut best = program.clone();
    if let Some(m) = best.as_object_mut() {
        m.remove("model");
        m.remove("dropped");
    }
    let mut runs = 0;
    let txs = |p: &serde_json::Value| p["transactions"].as_array().cloned().unwrap_or_default();
    // Transactions.
    let mut i = 0;
    while i < txs(&best).len() && runs < o.max_shrink_runs {
        let mut c = best.clone();
        c["transactions"].as_array_mut().unwrap().remove(i);
        if let Some(m) = c["maintenance"].as_array_mut().filter(|m| i < m.len()) {
            m.remove(i);
        }
        runs += 1;
        if try_candidate(o, script, work, &c, seed, want)?.is_some() {
            log.push(format!("drop transaction {}: still fails", i + 1));
            best = c;
        } else {
            log.push(format!("drop transaction {}: passes, kept", i + 1));
            i += 1;
        }
    }
    // Statements within the remaining transactions, and maintenance steps.
    for t in 0..txs(&best).len() {
        let mut s = 0;
        while s < best["transactions"][t].as_array().map_or(0, Vec::len) && runs < o.max_shrink_runs
        {
            if best["transactions"][t].as_array().map_or(0, Vec::len) <= 1 {
                break;
            }
            let mut c = best.clone();
            c["transactions"][t].as_array_mut().unwrap().remove(s);
            runs += 1;
            if try_candidate(o, script, work, &c, seed, want)?.is_some() {
                log.push(format!(
                    "drop statement {} of transaction {}: still fails",
                    s + 1,
                    t + 1
                ));
                best = c;
            } else {
                s += 1;
            }
        }
        if best["maintenance"][t] != "none" && runs < o.max_shrink_runs {
            let mut c = best.clone();
            c["maintenance"][t] = "none".into();
            runs += 1;
            if try_candidate(o, script, work, &c, seed, want)?.is_some() {
                log.push(format!(
                    "drop the maintenance after transaction {}: still fails",
                    t + 1
                ));
                best = c;
            }
        }
    }
    if runs >= o.max_shrink_runs {
        log.push(format!("stopped after {runs} runs (--max-shrink-runs)"));
    }
    Ok(best)
}

/// The failing state's files in an exec evidence folder: `crash-state/` under a fault, the
/// database files themselves after a SIGKILL.
fn save_state(evidence: &Path, to: &Path) -> std::io::Result<bool> {
    if evidence.join("crash-state").is_dir() {
        copy_dir(&evidence.join("crash-state"), to)?;
        return Ok(true);
    }
    let mut any = false;
    for e in std::fs::read_dir(evidence)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("trial.db") && e.file_type()?.is_file() {
            std::fs::create_dir_all(to)?;
            std::fs::copy(e.path(), to.join(&name))?;
            any = true;
        }
    }
    Ok(any)
}

/// What makes two findings the same: the outcome and the worst state's finding with its cut,
/// numbers and paths left out (an engine that cannot open a file torn at creation fails alike in
/// every program).
fn signature(verdict: &str) -> String {
    let outcome = verdict.split(':').next().unwrap_or("");
    let worst = verdict.split("; worst: ").nth(1).unwrap_or(verdict);
    // Past the cut's name: `cut=op 83/303 (sync 0) tear-last `.
    let finding = match worst.find(") ") {
        Some(i) if worst.starts_with("cut=") => worst[i + 2..].split_once(' ').map_or("", |x| x.1),
        _ => worst,
    };
    let mut out = String::new();
    for w in finding.split_whitespace() {
        let w = if w.contains('/') {
            "PATH".to_string()
        } else {
            // A number of any length is one `#` (byte positions and checksums vary in width).
            let mut w2 = String::new();
            for c in w.chars() {
                if !c.is_ascii_digit() {
                    w2.push(c);
                } else if !w2.ends_with('#') {
                    w2.push('#');
                }
            }
            w2
        };
        out.push_str(&w);
        out.push(' ');
        if out.len() > 120 {
            break;
        }
    }
    format!("{outcome}: {}", out.trim_end())
}

/// The [`signature`] of one crash state's row (`crash-states.csv`): the same words as its trial's
/// verdict gives when that state is the trial's worst.
fn state_signature(outcome: &str, detail: &str) -> String {
    signature(&format!("{outcome}: ; worst: {detail}"))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else if ft.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// `hunt.py gen` then `validate`: the program `pdir/program.json`, statements the engine
/// rejects dropped, with its model.
fn generate(
    o: &HuntOptions,
    script: &Path,
    pdir: &Path,
    pseed: u64,
    i: u64,
) -> Result<PathBuf, (i32, String)> {
    let lab = |e: String| (exit_code::LAB_ERROR, e);
    let raw = pdir.join("raw.json");
    let mut gen_args: Vec<std::ffi::OsString> = vec![
        script.to_path_buf().into(),
        "gen".into(),
        "--engine".into(),
        o.engine.clone().into(),
        "--seed".into(),
        pseed.to_string().into(),
        "--transactions".into(),
        o.transactions.to_string().into(),
    ];
    if let Some(w) = &o.weights {
        gen_args.push("--weights".into());
        gen_args.push(w.clone().into());
    }
    let g = Command::new("python3")
        .args(&gen_args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| lab(format!("python3: {e}")))?;
    if !g.status.success() {
        return Err((
            exit_code::USAGE,
            format!("hunt.py gen: {}", String::from_utf8_lossy(&g.stderr).trim()),
        ));
    }
    std::fs::write(&raw, &g.stdout).map_err(|e| lab(e.to_string()))?;
    let program = pdir.join("program.json");
    let v = python(&[
        script.as_os_str(),
        "validate".as_ref(),
        raw.as_os_str(),
        program.as_os_str(),
    ])
    .map_err(lab)?;
    if !v.status.success() {
        return Err(lab(format!(
            "hunt.py validate (program {i}): {}",
            String::from_utf8_lossy(&v.stderr).trim()
        )));
    }
    Ok(program)
}

/// Files one finding in the bug base: the program and its shrunk form (each with its crash
/// state), the seed, the verdict, the shrinking log and a standalone reproduction.
struct Filing<'a> {
    o: &'a HuntOptions,
    script: &'a Path,
    pdir: &'a Path,
    program: &'a Path,
    seed: u64,
    version: &'a str,
}

impl Filing<'_> {
    fn file(
        &self,
        bug: &Path,
        (verdict, evidence, acked): (String, PathBuf, u64),
    ) -> Result<(), (i32, String)> {
        let (o, script, pdir, pseed, version) =
            (self.o, self.script, self.pdir, self.seed, self.version);
        let lab = |e: String| (exit_code::LAB_ERROR, e);
        let io = |e: std::io::Error| (exit_code::LAB_ERROR, e.to_string());
        let full = read_program(self.program).map_err(lab)?;
        let mut log = vec![format!("finding: {verdict}")];
        let shrunk = shrink(
            o,
            script,
            pdir,
            &full,
            pseed,
            &signature(&verdict),
            &mut log,
        )?;
        std::fs::create_dir_all(bug).map_err(io)?;
        let write = |name: &str, text: String| std::fs::write(bug.join(name), text).map_err(io);
        std::fs::copy(self.program, bug.join("program.json")).map_err(io)?;
        write(
            "shrunk.json",
            serde_json::to_string_pretty(&shrunk).unwrap_or_default(),
        )?;
        // The shrunk program validated: its model, for the reproduction's oracle.
        let _ = python(&[
            script.as_os_str(),
            "validate".as_ref(),
            bug.join("shrunk.json").as_os_str(),
            bug.join("shrunk-model.json").as_os_str(),
        ]);
        write("seed", format!("{pseed}\n"))?;
        write(
            "verdict.txt",
            format!("{} {version}, --fault {}: {verdict}\n", o.engine, o.fault),
        )?;
        std::fs::copy(script, bug.join("hunt.py")).map_err(io)?;
        let saved = save_state(&evidence, &bug.join("crash-state")).map_err(io)?;
        // The shrunk program once more, to keep its own crash state.
        let mut shrunk_line = String::new();
        let mut shrunk_verdict = None;
        if let Some(again) = try_candidate(o, script, pdir, &shrunk, pseed, &signature(&verdict))? {
            if let Some((v, ev, k)) = again.finding {
                shrunk_verdict = Some(v);
                if save_state(&ev, &bug.join("shrunk-crash-state")).map_err(io)? {
                    // Exit 1 (reproduces) or 3 (cannot check) ends the script with that code.
                    shrunk_line = format!(
                        "\"$PY\" hunt.py repro shrunk-model.json shrunk-crash-state --acked {k} || exit $?\n"
                    );
                }
            }
        }
        // The engine's version is part of the bug: a repro run on another one says so (exit 3)
        // rather than "did not reproduce".
        let (package, have, install) = if o.engine == "sqlite" {
            (
                "sqlite3 (the stdlib, linked to SQLite",
                "import sqlite3 as m; v = m.sqlite_version",
                "a python3 linked to it",
            )
        } else {
            (
                "duckdb (the package",
                "import duckdb as m; v = m.__version__",
                "pip install duckdb==VERSION",
            )
        };
        let install = install.replace("VERSION", version);
        write(
            "repro.sh",
            format!(
                "#!/bin/sh\n# {engine} {version}, --fault {fault}: needs python3 with {package} {version}); PYTHON=/path/to/python3 picks\n# another interpreter. Checks the saved crash states against their programs' models: acknowledged\n# commits, prefix consistency, index lookups, integrity. Exit 1: the bug reproduces; 0: it does not;\n# 3: nothing could be checked.\ncd \"$(dirname \"$0\")\" || exit 3\nPY=${{PYTHON:-python3}}\n\"$PY\" -c '{have}; import sys; sys.exit(v != \"{version}\")' 2>/dev/null || {{ echo \"repro.sh: needs {engine} {version} ({install}), or PYTHON=... naming a python3 that has it\" >&2; exit 3; }}\n{shrunk_line}\"$PY\" hunt.py repro program.json crash-state --acked {acked}\n",
                engine = o.engine,
                fault = o.fault,
            ),
        )?;
        if !saved {
            log.push(
                "the failing trial kept no database files: repro.sh has nothing to check".into(),
            );
        }
        write("shrink.log", log.join("\n") + "\n")?;
        write(
            "report.md",
            draft_report(
                o,
                version,
                (&verdict, shrunk_verdict.as_deref()),
                &read_program(&bug.join("shrunk-model.json")).unwrap_or(shrunk.clone()),
                pseed,
            ),
        )?;
        eprintln!(
            "torture: FINDING {}: {verdict} — shrunk to {} transaction(s); filed in {}",
            bug.file_name().unwrap_or_default().to_string_lossy(),
            shrunk["transactions"].as_array().map_or(0, Vec::len),
            bug.display()
        );
        Ok(())
    }
}

/// A draft upstream report of a finding: title, versions, steps (the shrunk program as it
/// validated, as SQL), expected, actual (the shrunk program's run when it kept its own crash
/// state, else the original's), and how to reproduce it from the bug base.
fn draft_report(
    o: &HuntOptions,
    version: &str,
    (original, shrunk_verdict): (&str, Option<&str>),
    shrunk: &serde_json::Value,
    seed: u64,
) -> String {
    let verdict = shrunk_verdict.unwrap_or(original);
    let kind = verdict.split(':').next().unwrap_or(verdict).trim();
    let power = o.fault == "power-loss";
    let (engine, settings, checkpoint) = if o.engine == "sqlite" {
        (
            "SQLite",
            "`PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;`",
            "PRAGMA wal_checkpoint(TRUNCATE);",
        )
    } else if power {
        (
            "DuckDB",
            "the defaults (DuckDB syncs its WAL at every commit); the power cut is modelled as on \
             ext4/XFS, where a file's fsync also makes its new name durable (DuckDB never fsyncs \
             its folder)",
            "CHECKPOINT;",
        )
    } else {
        (
            "DuckDB",
            "the defaults (DuckDB syncs its WAL at every commit)",
            "CHECKPOINT;",
        )
    };
    let (event, how) = if power {
        (
            "a power cut",
            "modelled by the lab from the recorded file operations: what a sync made durable is \
             kept, unsynced writes are lost, kept whole or torn",
        )
    } else {
        (
            "a crash",
            "the process killed (SIGKILL) at a recorded file operation: every write it made is kept",
        )
    };
    let mut steps = String::new();
    let empty = Vec::new();
    let txs = shrunk["transactions"].as_array().unwrap_or(&empty);
    for (i, t) in txs.iter().enumerate() {
        steps.push_str("BEGIN;\n");
        for s in t.as_array().unwrap_or(&empty) {
            steps.push_str(s.as_str().unwrap_or_default());
            steps.push_str(";\n");
        }
        steps.push_str(&format!(
            "INSERT INTO hunt_acks VALUES ({});\nCOMMIT;  -- acknowledged\n",
            i + 1
        ));
        match shrunk["maintenance"][i].as_str() {
            Some("checkpoint") => {
                steps.push_str(checkpoint);
                steps.push('\n');
            }
            Some("vacuum") => steps.push_str("VACUUM;\n"),
            _ => {}
        }
    }
    // The verdict as the lab printed it, cut to what a report can hold.
    let mut actual: String = verdict.chars().take(2000).collect();
    if shrunk_verdict.is_none() {
        actual.insert_str(
            0,
            "(the original program's run; the shrunk one kept no crash state) ",
        );
    }
    format!(
        "# {engine} {version}: {kind} after {event} (draft)\n\n\
         Found by `torture hunt` (generated program, seed {seed}); a draft to check before filing.\n\n\
         ## Versions\n\n- {engine} {version} (Python package), Linux\n- settings: {settings}\n\n\
         ## Steps\n\nOn a fresh database (`hunt_acks(k INTEGER PRIMARY KEY)` created first), \
         each transaction acknowledged after its COMMIT returned:\n\n```sql\n{steps}```\n\n\
         Then {event} (`--fault {fault}`), {how}. The crash state's files are in `crash-state/` (and `shrunk-crash-state/` for the program above).\n\n\
         ## Expected\n\nThe database opens, passes its integrity check, holds every acknowledged \
         transaction, and equals the state after some prefix of the committed transactions.\n\n\
         ## Actual\n\n{actual}\n\n\
         ## Reproduce\n\n`sh repro.sh` re-checks the saved crash states with only `python3` and \
         {engine} {version} (exit 1: it reproduces; `PYTHON=` names another interpreter).\n",
        fault = o.fault,
    )
}

/// `torture hunt`: returns the exit code (0 nothing found, 1 findings, 2 bad usage, 3 lab error).
pub fn hunt(o: &HuntOptions) -> i32 {
    if let Err(e) = validate(o) {
        eprintln!("torture: {e}");
        return exit_code::USAGE;
    }
    match run(o) {
        Ok(findings) if findings > 0 => exit_code::VIOLATION,
        Ok(_) => exit_code::CLEAN,
        Err((code, e)) => {
            eprintln!("torture: {e}");
            code
        }
    }
}

fn run(o: &HuntOptions) -> Result<u64, (i32, String)> {
    let lab = |e: String| (exit_code::LAB_ERROR, e);
    let version = engine_version(&o.engine).map_err(|e| (exit_code::USAGE, e))?;
    std::fs::create_dir_all(&o.out).map_err(|e| lab(format!("{}: {e}", o.out.display())))?;
    let script = o.out.join("hunt.py");
    std::fs::write(&script, HUNT_PY).map_err(|e| lab(e.to_string()))?;
    let state_path = o.out.join("hunt.json");
    let mut state: State = if o.resume {
        read_program(&state_path)
            .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
            .map_err(|e| (exit_code::USAGE, format!("--resume: {e}")))?
    } else {
        State {
            seed: o.seed,
            engine: o.engine.clone(),
            fault: o.fault.clone(),
            ..State::default()
        }
    };
    if state.engine != o.engine || state.fault != o.fault {
        return Err((
            exit_code::USAGE,
            format!(
                "--resume: this hunt ran --engine {} --fault {}; give the same",
                state.engine, state.fault
            ),
        ));
    }
    let base = o.out.join(format!("{}-{version}", o.engine));
    let work = o.out.join("work");
    eprintln!(
        "torture: hunting {} {version} under {}, seed {}, budget {:.0}s, {} trial(s) per program",
        o.engine,
        o.fault,
        state.seed,
        o.budget.as_secs_f64(),
        o.trials
    );
    let started = Instant::now();
    while started.elapsed() < o.budget {
        let i = state.next;
        let pseed = state.seed.wrapping_add(i);
        let pdir = work.join(i.to_string());
        let _ = std::fs::remove_dir_all(&pdir);
        std::fs::create_dir_all(&pdir).map_err(|e| lab(e.to_string()))?;
        let program = generate(o, &script, &pdir, pseed, i)?;
        let r = run_program(o, &script, &program, pseed, &pdir.join("run"))?;
        state.programs += 1;
        state.crash_states += r.states;
        match (r.violation, r.finding) {
            (true, Some((verdict, _, _))) if state.signatures.contains(&signature(&verdict)) => {
                state.duplicates += 1;
                eprintln!(
                    "torture: program {i} fails like a finding already filed ({}): counted, not filed again",
                    signature(&verdict)
                );
                let _ = std::fs::remove_dir_all(&pdir);
            }
            (true, Some(finding)) => {
                state.signatures.push(signature(&finding.0));
                state.findings += 1;
                let f = Filing {
                    o,
                    script: &script,
                    pdir: &pdir,
                    program: &program,
                    seed: pseed,
                    version: &version,
                };
                f.file(&base.join(format!("{i:04}-seed{pseed}")), finding)?;
                // Filed: the bug base holds what it needs; the runs' folders can be large.
                let _ = std::fs::remove_dir_all(&pdir);
            }
            _ => {
                let _ = std::fs::remove_dir_all(&pdir);
            }
        }
        state.next += 1;
        let json = serde_json::to_string_pretty(&state).unwrap_or_default();
        crate::fsio::write_whole(&state_path, json.as_bytes()).map_err(|e| lab(e.to_string()))?;
        eprintln!(
            "torture: hunt: {} program(s), {} crash state(s) checked, {} finding(s) ({} more alike), {:.0}s",
            state.programs,
            state.crash_states,
            state.findings,
            state.duplicates,
            started.elapsed().as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir(&work);
    println!(
        "hunt: {} program(s), {} crash state(s) checked, {} finding(s) ({} more alike); bug base: {}",
        state.programs,
        state.crash_states,
        state.findings,
        state.duplicates,
        base.display()
    );
    Ok(state.findings)
}

#[cfg(test)]
mod tests {
    use super::{signature, state_signature};

    /// A shrink candidate counts as the finding when one of its crash states fails the same way
    /// as the finding's worst state: a state's row and a verdict naming it as the worst agree.
    #[test]
    fn a_state_row_and_a_verdict_naming_it_share_a_signature() {
        let state = "reopen with DuckDB: InternalException: INTERNAL Error: Failure while replaying WAL file \"/dev/shm/t/trial.db.wal\": Calling DatabaseManager::GetDefaultDatabase with no default database set";
        let verdict = format!("open-failed: 32 crash states (every-sync, 16 cuts): 19 intact, 13 open-failed; recording: 147 ops; worst: cut=op 86/147 (sync 11) keep-all {}", state.replace("/t/", "/u/"));
        assert_eq!(state_signature("open-failed", state), signature(&verdict));
        let other = "reopen with DuckDB: IOException: IO Error: Failure while replaying WAL file \"/dev/shm/t/trial.db.wal\": Corrupt WAL file: entry at byte position 284";
        assert_ne!(state_signature("open-failed", other), signature(&verdict));
        assert_ne!(state_signature("corrupt", state), signature(&verdict));
    }

    #[test]
    fn findings_alike_but_for_numbers_and_paths_share_a_signature() {
        let a = "open-failed: 53 crash states (…); worst: cut=op 83/303 (sync 0) tear-last reopen with DuckDB: IOException: IO Error: Could not read enough bytes from file \"/dev/shm/a/trial.db\": attempted to read 2048 bytes from location 10240";
        let b = "open-failed: 40 crash states (…); worst: cut=op 91/410 (sync 2) lose-all reopen with DuckDB: IOException: IO Error: Could not read enough bytes from file \"/dev/shm/b/trial.db\": attempted to read 4096 bytes from location 8192";
        assert_eq!(signature(a), signature(b));
        // Numbers of different widths too.
        let w1 = "open-failed: x; worst: cut=op 69/125 (sync 11) random:d6 reopen with DuckDB: Error: Failure while replaying WAL file \"/dev/shm/a/trial.db.wal\": Corrupt WAL file: entry at byte position 8397 computed checksum 232";
        let w2 = "open-failed: x; worst: cut=op 32/153 (sync 5) random:99 reopen with DuckDB: Error: Failure while replaying WAL file \"/dev/shm/b/trial.db.wal\": Corrupt WAL file: entry at byte position 447570 computed checksum 19272967";
        assert_eq!(signature(w1), signature(w2));
        let c = "lost-commit: 9 crash states; worst: cut=op 12/40 (sync 1) lose-all [acked-before-durable] commit 3: acked before any sync covered it";
        assert_ne!(signature(a), signature(c));
        assert!(
            signature(c).starts_with("lost-commit: "),
            "{}",
            signature(c)
        );
    }
}
