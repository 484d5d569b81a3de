//! Scenario `pool` (seeds 000, 002): one process with a pool of P connections on threads, with and
//! without busy_timeout, in DELETE and WAL mode, SIGKILLed at a seeded point — or, in the `-power`
//! variants, cut by a simulated power loss. Counts the failed transactions by result code, lost
//! commits and corruption.
//!
//! A power-loss variant runs the pool once, bounded (each connection makes [`POWER_COMMITS`]
//! commits), with the fault shim logging every write, truncate, sync, create and delete of the one
//! process. The shim counts, logs and performs each of them under one process-wide lock, so the log
//! is a single total order of what the files saw, across threads. The cut is then placed at
//! operation N of that log (drawn from the trial's seed), the files are rewound to what a disk could
//! hold after a power loss there, and only commits acknowledged after fewer than N operations count
//! as acknowledged. The threads interleave differently on every run, so the same seed gives the
//! same N but not the same log: these trials do not replay byte for byte (`torture replay` refuses
//! them), they sample.

use std::collections::BTreeMap;
use std::time::Duration;

use torture_workloads::{JournalMode, Synchronous};

use super::engine::{self, failed_codes, record, Ctx, Ending, Metrics, WriterSpec};
use super::{base_profile, Kind, Scenario, Variant};
use crate::faults::FaultConfig;
use crate::trial::outcome::{Outcome, TrialRecord};
use crate::verify::verdict::Fault;

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

/// The power-loss trial: the pool makes its bounded commits with the shim logging, is SIGKILLed
/// once every connection is done (holding its connections open: no clean close, no checkpoint on
/// close), then the cut is placed on the complete log.
fn run_power_loss(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    const FAULT: &str = "power-loss";
    let log = ctx.path("ops.log");
    if let Err(e) = ctx.fresh_database() {
        return ctx.setup_failed(FAULT, e);
    }
    let mut run = match engine::Children::new(ctx.files, p.pool, None, ctx.opts.trial_timeout) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(FAULT, e),
    };
    let spec = WriterSpec {
        max_commits: POWER_COMMITS,
        on_shim: true,
        report_ack_ops: true,
        ..ctx.writer_spec()
    };
    let config = FaultConfig {
        // SQLite's own PRNG (WAL salts, journal nonces) seeded from the trial, as the core does.
        sqlite_prng_seed: Some((ctx.seed as u32) | 1),
        log_path: Some(log.clone()),
        ..FaultConfig::default()
    };
    let pool = p.pool;
    let spawned = run.spawn(&[], |env| {
        // One configuration for the whole process, before any connection opens: every thread's
        // operations share one count and one log.
        if let Err(e) = crate::faults::configure(config) {
            env.sender().error(0, "FAULT_SETUP", &e.to_string());
            return 0;
        }
        std::thread::scope(|s| {
            for id in 0..pool {
                let spec = WriterSpec { id, ..spec };
                s.spawn(move || {
                    let conn = engine::open_writer(env, &spec);
                    if let Some(mut conn) = conn {
                        engine::commit_loop(env, &spec, &mut conn, 1, &engine::never);
                        env.sender().done(id);
                        // Hold the connection until the slot's SIGKILL: a pool does not close.
                        loop {
                            std::thread::sleep(Duration::from_secs(3600));
                        }
                    }
                    env.sender().done(id);
                });
            }
        });
        0
    });
    let mut end = Ending::new(FAULT);
    end.judged_as = Fault::PowerLoss;
    if let Err(e) = spawned {
        run.stop_all();
        end.setup_error = Some(e);
        return record(ctx, Some(&run), end);
    }
    run.seal();
    let deadline = run.deadline;
    run.wait_until(deadline, |r| r.writers_done() || r.all_gone());
    let finished = run.writers_done();
    run.stop_all();
    failed_codes(&run, &mut end, "failed_txns");
    if !finished {
        end.setup_error = Some(format!(
            "the pool did not finish its {} commits per connection",
            POWER_COMMITS
        ));
        return record(ctx, Some(&run), end);
    }
    let all_acks = run.events.ack_ops.len() as u64;
    let cut = match crate::trial::cut_power(&log, ctx.opts, ctx.seed, &mut run.events) {
        Ok(c) => c,
        Err(e) => {
            end.setup_error = Some(e);
            return record(ctx, Some(&run), end);
        }
    };
    end.kill_point = cut.point;
    end.measures.push(format!(
        "acked before the cut {} of {all_acks}",
        all_acks - cut.acks_after_cut
    ));
    end.measures.push(cut.detail);
    end.measures
        .push("threads interleave anew each run: sampled, not replayable".into());
    end.measure("acks_after_cut", cut.acks_after_cut);
    end.verification = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    if end.verification.outcome == Outcome::LostCommit {
        // How many: SQLite documents that rollback+FULL may lose "the last commit", one.
        if let Some(n) = lost_acked(ctx.db(), &run.events.acked) {
            end.measure("lost_acked_commits", n);
            end.measures.push(format!("acknowledged commits lost: {n}"));
        }
    }
    end.extra_evidence.push(("ops.log".into(), log));
    record(ctx, Some(&run), end)
}

/// Acknowledged commits missing from the recovered database, over every writer; None when it
/// cannot be read.
fn lost_acked(db: &std::path::Path, acked: &BTreeMap<u32, u64>) -> Option<u64> {
    let conn = crate::engine::open(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY, None).ok()?;
    let found = torture_workloads::recovered_commits(&conn).ok()?;
    Some(
        acked
            .iter()
            .map(|(w, &a)| a.saturating_sub(found.get(w).map_or(0, |c| c.max_seq)))
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};
    use crate::trial::outcome::{Outcome, Verdict};

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
        let rows = lab.run("pool", "wal-p4-busy-power", 8);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0, "{:?}", rows[0].0.detail);
        for (r, _) in &rows {
            assert_eq!(r.profile, "pool/wal-p4-busy-power");
            assert_eq!((r.fault.as_str(), r.connections), ("power-loss", 4));
            assert_eq!(r.journal_mode, "wal");
            assert!(r.kill_point.starts_with("op="), "{}", r.kill_point);
            assert!(
                r.detail.starts_with(
                    "journal_mode=wal synchronous=full pool=4 busy_timeout_ms=5000 fault=power-loss commits_per_connection=10"
                ),
                "{}",
                r.detail
            );
            assert!(r.detail.contains("power cut: power loss: writes kept"));
            assert_eq!(r.verdict, Verdict::Ok);
            assert!(r.recovered_commits >= r.acked_commits);
        }
        // The cuts really took something away: acknowledgements, and writes that were not durable.
        let after: u64 = rows.iter().map(|(_, m)| m["acks_after_cut"]).sum();
        assert!(after > 0, "every cut fell after the last commit");
        assert!(rows
            .iter()
            .any(|(r, _)| r.recovered_commits < 4 * super::POWER_COMMITS));
    }

    #[test]
    fn a_pool_without_fsync_is_caught_by_a_power_cut() {
        let _g = serial();
        let lab = lab(&[]);
        for variant in [
            "wal-p4-busy-sync-off-power",
            "delete-p4-busy-sync-off-power",
        ] {
            let rows = lab.run("pool", variant, 8);
            no_lab_errors(&rows);
            assert!(
                damaged(&rows) > 0,
                "{variant}: no power cut caught the missing fsyncs: {:?}",
                rows.iter().map(|(r, _)| &r.detail).collect::<Vec<_>>()
            );
            for (r, _) in &rows {
                assert_eq!(r.synchronous, "off");
                // synchronous=OFF "may corrupt" after a power loss: documented, not a violation.
                assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
            }
        }
    }

    #[test]
    fn acknowledgements_after_the_cut_are_not_counted() {
        let _g = serial();
        // A fixed cut early in the log: most commits were acknowledged after it.
        let lab = lab(&["--crash-at", "any:40"]);
        let rows = lab.run("pool", "wal-p4-busy-power", 3);
        no_lab_errors(&rows);
        for (r, m) in &rows {
            assert!(r.kill_point.starts_with("op=40/"), "{}", r.kill_point);
            let all = r.acked_commits + m["acks_after_cut"];
            assert_eq!(all, 4 * super::POWER_COMMITS, "{}", r.detail);
            assert!(m["acks_after_cut"] > 0, "{}", r.detail);
            // Commits acknowledged after the cut are gone from the disk: had they been counted,
            // the oracle would report lost commits. Counted as they must be, the trial is intact.
            assert!(r.recovered_commits < all, "{}", r.detail);
            assert_eq!(r.outcome, Outcome::Intact, "{}", r.detail);
            assert!(r.detail.contains(&format!(
                "acked before the cut {} of {all}",
                r.acked_commits
            )));
        }
    }
}
