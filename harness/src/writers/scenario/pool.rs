//! Scenario `pool` (seeds 000, 002): one process with a pool of P connections on threads, with and
//! without busy_timeout, in DELETE and WAL mode, SIGKILLed at a seeded point — or, in the `-power`
//! variants, cut by a simulated power loss. Counts the failed transactions by result code, lost
//! commits and corruption.
//!
//! A power-loss variant runs the pool once, bounded (each connection makes [`POWER_COMMITS`]
//! commits), under the file-operation recorder (`power.rs`): every file operation of every thread
//! of the one process lands in one log, in one total order with the acknowledgements. Every crash
//! state of that recording (every sync boundary, inside every WAL checkpoint, × keep/lose/tear, a
//! seeded sample of `--max-states`) is then rebuilt and checked; only commits acknowledged before a
//! state's cut count as acknowledged in it. The row is the worst state. The threads interleave
//! differently on every run, so the same seed does not give the same recording: these trials do
//! not replay byte for byte (`torture replay` refuses them), they sample.

use torture_workloads::{JournalMode, Synchronous};

use super::engine::{self, failed_codes, record, Ctx, Ending, Metrics};
use super::{base_profile, power, Kind, Scenario, Variant};
use crate::verify::outcome::TrialRecord;

/// Commits each connection of a power-loss variant makes before the log is cut.
pub(crate) const POWER_COMMITS: u64 = 10;

pub(crate) struct Params {
    pub pool: u32,
    /// A simulated power cut placed on the pool's operation log, instead of a SIGKILL.
    pub power_loss: bool,
}

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    let mut add =
        |journal: JournalMode, sync: Synchronous, pool: u32, busy_ms: u32, power: bool| {
            let mut profile = base_profile(journal, sync);
            profile.connections = pool;
            profile.busy_timeout_ms = busy_ms;
            let mut name = format!(
                "{}-p{pool}-{}",
                journal.as_str(),
                if busy_ms > 0 { "busy" } else { "nobusy" }
            );
            let mut params = format!(
                "journal_mode={} synchronous={} pool={pool} busy_timeout_ms={busy_ms}",
                journal.as_str(),
                sync.as_str()
            );
            if sync != Synchronous::Full {
                name.push_str(&format!("-sync-{}", sync.as_str()));
            }
            if power {
                name.push_str("-power");
                params.push_str(&format!(
                    " fault=power-loss commits_per_connection={POWER_COMMITS}"
                ));
            }
            variants.push(Variant::new(
                "pool",
                name,
                params,
                profile,
                Kind::Pool(Params {
                    pool,
                    power_loss: power,
                }),
            ));
        };
    for power in [false, true] {
        for journal in [JournalMode::Delete, JournalMode::Wal] {
            for pool in [1, 4, 10] {
                for busy_ms in [5000, 0] {
                    add(journal, Synchronous::Full, pool, busy_ms, power);
                }
            }
        }
    }
    // Positive controls: without fsync a power cut may lose or tear anything, and must be caught.
    for journal in [JournalMode::Delete, JournalMode::Wal] {
        add(journal, Synchronous::Off, 4, 5000, true);
    }
    Scenario {
        name: "pool",
        summary: "a pool of 1/4/10 connections on threads in one process, with and without busy_timeout, DELETE and WAL, SIGKILLed or cut by a power loss",
        claim: "000: a pool of 10 connections in DELETE mode without busy_timeout, killed with `killall -9`, \
                corrupted the database (\"file is not a database\"); \"no busy timeout ... led to failed transactions \
                and incomplete writes\"; the fix is WAL + busy_timeout=5000. 002: shrinking the pool from 10 to 4 \
                connections means \"less contention\".",
        seeds: "000, 002",
        variants,
    }
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    if p.power_loss {
        return run_power_loss(ctx, p);
    }
    let kp = ctx.kill_point();
    let mut run = match engine::start_writers(ctx, 1, p.pool, Some(kp)) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed("sigkill", e),
    };
    let mut end = Ending::new("sigkill");
    end.kill_point = run.wait_kill_point(kp).describe(kp);
    run.stop_all();
    failed_codes(&run, &mut end, "failed_txns");
    end.verification = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    record(ctx, Some(&run), end)
}

/// The power-loss trial: the pool's one process makes its bounded commits (each connection
/// [`POWER_COMMITS`]) under the file-operation recorder, holds its connections open (no clean close,
/// no checkpoint on close) and is SIGKILLed; then every crash state of that one recording is
/// checked (`power.rs`).
fn run_power_loss(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let mut rec = match power::Recording::new(ctx, p.pool) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(power::FAULT, e),
    };
    let mut end = Ending::new(power::FAULT);
    if let Err(e) = rec.spawn_writers(&ctx.writer_spec(), 1, p.pool, POWER_COMMITS) {
        end.setup_error = Some(e);
        let run = rec.finish_and_check(ctx, &mut end);
        return record(ctx, Some(&run), end);
    }
    let run = rec.finish_and_check(ctx, &mut end);
    failed_codes(&run, &mut end, "failed_txns");
    end.measures
        .push("threads interleave anew each run: sampled, not replayable".into());
    record(ctx, Some(&run), end)
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};
    use crate::verify::outcome::{Outcome, Verdict};

    #[test]
    fn a_pool_of_ten_without_busy_timeout_fails_transactions_but_loses_nothing() {
        let _g = serial();
        let lab = lab(&[]);
        let rows = lab.run("pool", "delete-p10-nobusy", 6);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0, "{:?}", rows[0].0.detail);
        let busy: u64 = rows.iter().map(|(r, _)| r.busy_errors).sum();
        assert!(
            busy > 0,
            "ten connections without busy_timeout never collided"
        );
        for (r, m) in &rows {
            assert_eq!(r.profile, "pool/delete-p10-nobusy");
            assert_eq!(r.connections, 10);
            assert!(r
                .detail
                .starts_with("journal_mode=delete synchronous=full pool=10 busy_timeout_ms=0"));
            assert_eq!(r.outcome, Outcome::Intact);
            assert_eq!(m["outcome:intact"], 1);
        }
        assert!(rows
            .iter()
            .any(|(r, _)| r.detail.contains("failed_txns SQLITE_BUSY=")));
        let rows = lab.run("pool", "wal-p4-busy", 4);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0);
        assert!(rows.iter().all(|(r, _)| r.journal_mode == "wal"));
    }

    #[test]
    fn a_wal_full_pool_of_four_with_busy_timeout_loses_nothing_to_a_power_cut() {
        let _g = serial();
        let lab = lab(&[]);
        let rows = lab.run("pool", "wal-p4-busy-power", 4);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0, "{:?}", rows[0].0.detail);
        for (r, m) in &rows {
            assert_eq!(r.profile, "pool/wal-p4-busy-power");
            assert_eq!((r.fault.as_str(), r.connections), ("power-loss", 4));
            assert_eq!(r.journal_mode, "wal");
            assert!(r.kill_point.starts_with("cut=op "), "{}", r.kill_point);
            assert!(
                r.detail.starts_with(
                    "journal_mode=wal synchronous=full pool=4 busy_timeout_ms=5000 fault=power-loss commits_per_connection=10"
                ),
                "{}",
                r.detail
            );
            assert_eq!(r.verdict, Verdict::Ok);
            assert_eq!(r.damaged_states, 0, "{}", r.detail);
            // Every sync boundary of a 40-commit recording: many states, not one.
            assert!(r.crash_states >= 20, "{}", r.detail);
            assert_eq!(m["crash_states"], r.crash_states);
            assert!(r.recovered_commits >= r.acked_commits);
        }
    }

    #[test]
    fn a_pool_without_fsync_is_caught_by_a_power_cut() {
        let _g = serial();
        let lab = lab(&[]);
        for variant in [
            "wal-p4-busy-sync-off-power",
            "delete-p4-busy-sync-off-power",
        ] {
            let rows = lab.run("pool", variant, 3);
            no_lab_errors(&rows);
            assert!(
                damaged(&rows) > 0,
                "{variant}: no power cut caught the missing fsyncs: {:?}",
                rows.iter().map(|(r, _)| &r.detail).collect::<Vec<_>>()
            );
            for (r, _) in &rows {
                assert_eq!(r.synchronous, "off");
                assert!(
                    r.damaged_states > 0 || !r.outcome.is_damage(),
                    "{}",
                    r.detail
                );
                // synchronous=OFF "may corrupt" after a power loss: documented, not a violation.
                assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
            }
        }
    }

    #[test]
    fn a_lying_disk_is_caught_under_a_wal_full_pool() {
        let _g = serial();
        // A disk that ignores fsync: WAL+FULL's promise needs the hardware it assumes.
        let lab = lab(&["--lying-disk"]);
        let rows = lab.run("pool", "wal-p4-busy-power", 3);
        no_lab_errors(&rows);
        assert!(damaged(&rows) > 0, "{:?}", rows[0].0.detail);
        for (r, _) in &rows {
            assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
        }
    }

    #[test]
    fn acknowledgements_after_the_cut_are_not_counted() {
        let _g = serial();
        // A fixed cut early in the recording: most commits were acknowledged after it.
        let lab = lab(&["--crash-at", "write:40"]);
        let rows = lab.run("pool", "wal-p4-busy-power", 3);
        no_lab_errors(&rows);
        for (r, m) in &rows {
            assert!(r.kill_point.starts_with("cut=op "), "{}", r.kill_point);
            // One cut, keep/lose/tear at it.
            assert!((1..=3).contains(&r.crash_states), "{}", r.detail);
            let all = r.acked_commits + m["acks_after_worst_cut"];
            assert_eq!(all, 4 * super::POWER_COMMITS, "{}", r.detail);
            assert!(m["acks_after_worst_cut"] > 0, "{}", r.detail);
            // Commits acknowledged after the cut are gone from the disk: had they been counted,
            // the oracle would report lost commits. Counted as they must be, the trial is intact.
            assert!(r.recovered_commits < all, "{}", r.detail);
            assert_eq!(r.outcome, Outcome::Intact, "{}", r.detail);
            assert!(r.detail.contains(&format!(
                "acked before the worst cut {} of {all}",
                r.acked_commits
            )));
        }
    }
}
