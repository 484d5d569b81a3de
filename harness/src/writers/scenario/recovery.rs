//! Scenario `recovery` (seed 004, howtocorrupt.html): after the SIGKILL an operator "repairs" the
//! database by deleting the -wal, the hot -journal, or every file but the database, then reopens it.
//! Measured against doing nothing: lost acknowledged commits and corruption.

use torture_workloads::{JournalMode, Synchronous};

use std::time::{Duration, Instant};

use rand::RngExt;

use super::engine::{
    self, file_size, hot_journal, record, Children, Ctx, Ending, Metrics, WriterSpec,
};
use super::{base_profile, Kind, Scenario, Variant};
use crate::engine::with_suffix;
use crate::faults::{CrashAt, OpFilter};
use crate::verify::outcome::TrialRecord;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// The control: reopen as the writer left it.
    Nothing,
    /// `rm db-wal` (seed 004's "delete corrupted WAL, it will rebuild").
    DeleteWal,
    /// `rm db-journal`: a hot journal deleted (howtocorrupt §1.3).
    DeleteJournal,
    /// Keep only the database file: every sidecar deleted.
    DbOnly,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Nothing => "nothing",
            Action::DeleteWal => "delete-wal",
            Action::DeleteJournal => "delete-journal",
            Action::DbOnly => "db-only",
        }
    }

    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Action::Nothing => &[],
            Action::DeleteWal => &["-wal"],
            Action::DeleteJournal => &["-journal"],
            Action::DbOnly => &["-wal", "-shm", "-journal"],
        }
    }
}

pub(crate) struct Params {
    pub action: Action,
    /// Crash exactly: the writer SIGKILLs itself just before its N-th write to the database file,
    /// N uniform in `1..=max`. In DELETE mode that is inside a commit, after the journal was synced
    /// (the journal is hot); in WAL mode the database file is only written by checkpoints, so it is
    /// inside a checkpoint. `None`: the slot's SIGKILL at the run's kill point.
    pub crash_before_db_write: Option<u64>,
}

/// Database writes the exact crash is drawn over: a few commits' (DELETE) or checkpoints' (WAL) worth.
const DB_WRITES: u64 = 30;

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    let mut add = |journal: JournalMode, exact: bool, action: Action| {
        let mut profile = base_profile(journal, Synchronous::Full);
        let wal = journal == JournalMode::Wal;
        // Checkpoints every ~3 commits, so short trials have some to crash in.
        profile.wal_autocheckpoint = if wal && exact { 10 } else { 1000 };
        let prefix = match (wal, exact) {
            (true, true) => "wal-midckpt",
            (true, false) => "wal",
            (false, true) => "delete-midcommit",
            (false, false) => "delete",
        };
        let mut params = format!("journal_mode={}", journal.as_str());
        if wal {
            params.push_str(&format!(
                " wal_autocheckpoint={}",
                profile.wal_autocheckpoint
            ));
        }
        params.push_str(if exact {
            " kill=writer SIGKILLs itself before its N-th db write (N in 1..30)"
        } else {
            " kill=SIGKILL at the run's kill point"
        });
        variants.push(Variant::new(
            "recovery",
            format!("{prefix}-{}", action.as_str()),
            format!(
                "{params} synchronous=full after_kill={}",
                match action {
                    Action::Nothing => "nothing".to_string(),
                    a => format!("rm {}", a.suffixes().join(",")),
                }
            ),
            profile,
            Kind::Recovery(Params {
                action,
                crash_before_db_write: exact.then_some(DB_WRITES),
            }),
        ));
    };
    for a in [Action::Nothing, Action::DeleteWal, Action::DbOnly] {
        add(JournalMode::Wal, false, a);
    }
    for a in [Action::Nothing, Action::DeleteWal] {
        add(JournalMode::Wal, true, a);
    }
    for exact in [false, true] {
        for a in [Action::Nothing, Action::DeleteJournal] {
            add(JournalMode::Delete, exact, a);
        }
    }
    Scenario {
        name: "recovery",
        summary: "after the SIGKILL an operator deletes the -wal, the hot -journal, or every file but the database, then reopens",
        claim: "004: when the WAL \"corrupts\", `rm gold.db.wal` — \"DuckDB will rebuild on next connection\"; \
                \"Status: Fixed - Preflight now passes\". howtocorrupt.html §1.3/§1.4: deleting a hot journal or a \
                -wal after a crash can corrupt the database.",
        seeds: "004, howtocorrupt",
        variants,
    }
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let fault = if p.crash_before_db_write.is_some() {
        "kill-at-op"
    } else {
        "sigkill"
    };
    let mut end = Ending::new(fault);
    let run = match p.crash_before_db_write {
        None => {
            let kp = ctx.kill_point();
            engine::start_writers(ctx, 1, 1, Some(kp)).map(|mut run| {
                end.kill_point = run.wait_kill_point(kp).describe(kp);
                run.stop_all();
                run
            })
        }
        Some(max) => {
            let n = ctx.rng(0).random_range(1..=max);
            end.kill_point = format!("op={n} write:db");
            crash_at_op(ctx, n).map(|(run, reached)| {
                if !reached {
                    end.kill_point.push_str(" (not reached in 2s: SIGKILLed)");
                }
                run
            })
        }
    };
    let run = match run {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(fault, e),
    };
    let db = ctx.db();
    let hot = hot_journal(db);
    let wal_bytes = file_size(&with_suffix(db, "-wal"));
    end.measure("hot_journal_at_kill", u64::from(hot));
    end.measure("wal_bytes_at_kill", wal_bytes);
    let mut deleted = Vec::new();
    let stash = ctx.path("deleted");
    for suffix in p.action.suffixes() {
        let from = with_suffix(db, suffix);
        if from.exists() {
            // Moved aside rather than deleted, so the evidence folder can show what the operator
            // threw away.
            let _ = std::fs::create_dir_all(&stash);
            let name = format!("deleted-trial.db{suffix}");
            let to = stash.join(&name);
            if std::fs::rename(&from, &to).is_ok() {
                deleted.push(suffix.to_string());
                end.extra_evidence.push((name, to));
            }
        }
    }
    end.measure("deleted_a_file", u64::from(!deleted.is_empty()));
    if hot && deleted.iter().any(|s| s == "-journal") {
        end.measure("deleted_hot_journal", 1);
    }
    end.measures.push(format!(
        "at_kill hot_journal={} wal_bytes={wal_bytes}; operator deleted: {}",
        if hot { "yes" } else { "no" },
        if deleted.is_empty() {
            "nothing".to_string()
        } else {
            deleted.join(",")
        }
    ));
    end.expected_damage = p.action != Action::Nothing;
    end.verification = end.verify(db, ctx.workload, &run.events.acked);
    let lost = run
        .events
        .acks_total
        .saturating_sub(end.verification.recovered_commits);
    end.measure("lost_acked_commits", lost);
    if end.verification.outcome.is_damage() && hot {
        end.measure("damaged_with_hot_journal", 1);
    }
    record(ctx, Some(&run), end)
}

/// One writer that SIGKILLs itself just before its `n`-th write to the database file. Returns the
/// run, and whether the crash point was reached (else the slot SIGKILLed it after two seconds).
fn crash_at_op<'a>(ctx: &Ctx<'a>, n: u64) -> Result<(Children<'a>, bool), String> {
    ctx.fresh_database()?;
    let mut run = Children::new(ctx.files, 1, None, ctx.opts.trial_timeout)?;
    let spec = WriterSpec {
        crash_at: Some(CrashAt {
            op: n,
            filter: "write:db".parse::<OpFilter>()?,
        }),
        ..ctx.writer_spec()
    };
    run.spawn(&[], |env| {
        engine::writer_process(env, &spec, 1, &engine::never);
        0
    })?;
    run.seal();
    let reached = run.wait_until(Instant::now() + Duration::from_secs(2), |r| r.all_gone());
    run.stop_all();
    Ok((run, reached))
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};
    use crate::verify::outcome::{Outcome, Verdict};

    #[test]
    fn deleting_the_wal_loses_acknowledged_commits_and_doing_nothing_loses_none() {
        let _g = serial();
        let lab = lab(&[]);
        let control = lab.run("recovery", "wal-nothing", 5);
        no_lab_errors(&control);
        assert_eq!(damaged(&control), 0);
        let rows = lab.run("recovery", "wal-delete-wal", 5);
        no_lab_errors(&rows);
        // Every trial commits at least once and the default checkpoint never runs in so few commits,
        // so every acknowledged commit was in the deleted WAL.
        for (r, m) in &rows {
            assert_eq!(r.outcome, Outcome::LostCommit, "{}", r.detail);
            assert_eq!(r.verdict, Verdict::Expected);
            assert!(r.detail.contains("operator deleted: -wal"), "{}", r.detail);
            assert!(m["lost_acked_commits"] > 0);
        }
        // The evidence shows what the operator threw away.
        let failure = lab
            .opts
            .out_dir
            .join("failures")
            .join(rows[0].0.iteration.to_string());
        assert!(failure.join("deleted-trial.db-wal").is_file());
        assert!(failure.join("trial.json").is_file());
    }

    #[test]
    fn deleting_a_journal_is_judged_expected_and_the_control_is_intact() {
        let _g = serial();
        let lab = lab(&[]);
        let rows = lab.run("recovery", "delete-delete-journal", 8);
        no_lab_errors(&rows);
        for (r, _) in &rows {
            assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
        }
        let control = lab.run("recovery", "delete-nothing", 8);
        no_lab_errors(&control);
        assert_eq!(damaged(&control), 0);
    }
}
