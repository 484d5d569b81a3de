//! Scenario `pool` (seeds 000, 002): one process with a pool of P connections on threads, with and
//! without busy_timeout, in DELETE and WAL mode, SIGKILLed at a seeded point. Counts the failed
//! transactions by result code, lost commits and corruption.

use torture_workloads::{JournalMode, Synchronous};

use super::engine::{self, failed_codes, record, Ctx, Ending, Metrics};
use super::{base_profile, Kind, Scenario, Variant};
use crate::outcome::TrialRecord;

pub(crate) struct Params {
    pub pool: u32,
}

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    for journal in [JournalMode::Delete, JournalMode::Wal] {
        for pool in [1, 4, 10] {
            for busy_ms in [5000, 0] {
                let mut profile = base_profile(journal, Synchronous::Full);
                profile.connections = pool;
                profile.busy_timeout_ms = busy_ms;
                let name = format!(
                    "{}-p{pool}-{}",
                    journal.as_str(),
                    if busy_ms > 0 { "busy" } else { "nobusy" }
                );
                let params = format!(
                    "journal_mode={} synchronous=full pool={pool} busy_timeout_ms={busy_ms}",
                    journal.as_str()
                );
                variants.push(Variant::new(
                    "pool",
                    name,
                    params,
                    profile,
                    Kind::Pool(Params { pool }),
                ));
            }
        }
    }
    Scenario {
        name: "pool",
        summary: "a pool of 1/4/10 connections on threads in one process, with and without busy_timeout, DELETE and WAL, SIGKILLed",
        claim: "000: a pool of 10 connections in DELETE mode without busy_timeout, killed with `killall -9`, \
                corrupted the database (\"file is not a database\"); \"no busy timeout ... led to failed transactions \
                and incomplete writes\"; the fix is WAL + busy_timeout=5000. 002: shrinking the pool from 10 to 4 \
                connections means \"less contention\".",
        seeds: "000, 002",
        variants,
    }
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let kp = ctx.kill_point();
    let mut run = match engine::start_writers(ctx, 1, p.pool, engine::wake_at(kp)) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed("sigkill", e),
    };
    let mut end = Ending::new("sigkill");
    end.kill_point = run.wait_kill_point(kp);
    run.stop_all();
    failed_codes(&run, &mut end, "failed_txns");
    end.verification = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    record(ctx, Some(&run), end)
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};
    use crate::outcome::Outcome;

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
}
