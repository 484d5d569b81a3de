//! Scenario `checkpoint` (seeds 001, 002): checkpoint policies in WAL mode — wal_autocheckpoint
//! 0/1000/10000, a thread running `PRAGMA wal_checkpoint(PASSIVE)` every millisecond, a TRUNCATE
//! checkpoint at shutdown — under SIGKILL at a random point, and crashes placed exactly inside a
//! checkpoint (the writer SIGKILLs itself just before its N-th write to the database file, which in
//! WAL mode only checkpoints write). Also measured: how large the WAL grew.

use std::ffi::{c_char, c_int, c_void};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::RngExt;
use rusqlite::{ffi, Connection};
use torture_workloads::{JournalMode, Synchronous};

use super::engine::{
    self, commit_loop, file_size, open_writer, record, word, Children, Ctx, Ending, Env, Metrics,
    Tally, WriterSpec,
};
use super::{base_profile, Kind, Scenario, Variant};
use crate::faults::{CrashAt, OpFilter};
use crate::trial::evidence::with_suffix;
use crate::trial::kill_point::KillPoint;
use crate::trial::outcome::TrialRecord;

pub(crate) struct Params {
    /// A thread checkpointing PASSIVE at this period (µs).
    pub passive_every_us: Option<u64>,
    /// SIGTERM at the kill point; the writer runs `wal_checkpoint(TRUNCATE)` and closes.
    pub truncate_at_shutdown: bool,
    /// Crash just before the N-th database write, N in `1..=max`; `None`: SIGKILL at the kill point.
    pub crash_before_db_write: Option<u64>,
}

/// Acknowledgements before the kill: enough for the WAL to pass 1,000 frames (~3 per commit).
const ACKS: (u64, u64) = (1, 1200);
/// The passive thread's period: seed 002's five minutes, scaled to trials of a few milliseconds.
const PASSIVE_US: u64 = 1000;

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    let mut add = |name: &str, auto: u32, p: Params, what: &str| {
        let mut profile = base_profile(JournalMode::Wal, Synchronous::Normal);
        profile.wal_autocheckpoint = auto;
        variants.push(Variant::new(
            "checkpoint",
            name,
            format!("journal_mode=wal synchronous=normal wal_autocheckpoint={auto} {what}"),
            profile,
            Kind::Checkpoint(p),
        ));
    };
    let random = "kill=SIGKILL after 1-1200 acks";
    for auto in [0, 1000, 10000] {
        add(
            &format!("auto{auto}"),
            auto,
            Params {
                passive_every_us: None,
                truncate_at_shutdown: false,
                crash_before_db_write: None,
            },
            random,
        );
    }
    add(
        "passive-1ms",
        1000,
        Params {
            passive_every_us: Some(PASSIVE_US),
            truncate_at_shutdown: false,
            crash_before_db_write: None,
        },
        &format!("checkpoint_thread=PASSIVE every {PASSIVE_US}us {random}"),
    );
    add(
        "auto100-crash-in-ckpt",
        100,
        Params {
            passive_every_us: None,
            truncate_at_shutdown: false,
            crash_before_db_write: Some(100),
        },
        "kill=writer SIGKILLs itself before its N-th db write (N in 1..100): inside an autocheckpoint",
    );
    add(
        "passive-1ms-crash-in-ckpt",
        0,
        Params {
            passive_every_us: Some(PASSIVE_US),
            truncate_at_shutdown: false,
            crash_before_db_write: Some(100),
        },
        &format!(
            "checkpoint_thread=PASSIVE every {PASSIVE_US}us kill=SIGKILL before the N-th db write (N in 1..100): inside the thread's checkpoint"
        ),
    );
    add(
        "truncate-at-shutdown-crash-in-ckpt",
        0,
        Params {
            passive_every_us: None,
            truncate_at_shutdown: true,
            crash_before_db_write: Some(300),
        },
        "shutdown=SIGTERM after 1-1200 acks, handler runs wal_checkpoint(TRUNCATE) and closes; \
         kill=SIGKILL before the N-th db write (N in 1..300): inside that checkpoint",
    );
    Scenario {
        name: "checkpoint",
        summary: "wal_autocheckpoint 0/1000/10000, a PASSIVE checkpoint thread, TRUNCATE at shutdown; crashes inside checkpoints; WAL size",
        claim: "001: without a checkpoint strategy, \"orphaned WAL files, corruption risk\"; \"WAL files can grow \
                unbounded, causing ... corruption if WAL partially written\"; set wal_autocheckpoint=1000 and run \
                wal_checkpoint(TRUNCATE) on shutdown. 002: \"add periodic checkpoint\" (PASSIVE every 5 minutes); \
                \"power loss during checkpoint can corrupt\" with NORMAL.",
        seeds: "001, 002",
        variants,
    }
}

/// Replaces SQLite's default autocheckpoint hook with one that does the same (a PASSIVE checkpoint
/// once the WAL holds `threshold` frames) and marks in shared memory while it runs, so the slot can
/// tell whether its SIGKILL landed inside a checkpoint.
struct Hook {
    tally: *const Tally,
    threshold: c_int,
}

unsafe extern "C" fn autocheckpoint_hook(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    zdb: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `arg` is the leaked Hook installed below; its tally lives as long as the process.
    let hook = unsafe { &*(arg as *const Hook) };
    if hook.threshold > 0 && frames >= hook.threshold {
        let tally = unsafe { &*hook.tally };
        tally.set(word::IN_CKPT, 1);
        // SAFETY: the same call SQLite's default hook (sqlite3WalDefaultHook) makes.
        let rc = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                zdb,
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        tally.set(word::IN_CKPT, 0);
        tally.add(
            if rc == ffi::SQLITE_OK {
                word::CKPTS
            } else {
                word::CKPT_INCOMPLETE
            },
            1,
        );
    }
    ffi::SQLITE_OK
}

fn install_hook(conn: &Connection, tally: &Tally, threshold: u32) {
    let hook = Box::into_raw(Box::new(Hook {
        tally,
        threshold: threshold as c_int,
    }));
    // SAFETY: an open connection; the hook data is leaked, so it outlives the connection.
    unsafe {
        ffi::sqlite3_wal_hook(conn.handle(), Some(autocheckpoint_hook), hook.cast());
    }
}

/// The checkpoint thread: its own connection (on the fault shim when the writer's is), PASSIVE every
/// `every_us`, marked in shared memory. Runs until the process is killed.
fn passive_thread(env: &Env<'_>, spec: &WriterSpec<'_>, every_us: u64) {
    let opened = if spec.crash_at.is_some() {
        Connection::open_with_flags_and_vfs(
            spec.db,
            rusqlite::OpenFlags::default(),
            crate::faults::VFS_NAME,
        )
    } else {
        Connection::open(spec.db)
    };
    let Ok(conn) = opened else {
        env.sender()
            .error(spec.id, "CHECKPOINT_THREAD", "cannot open");
        return;
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    loop {
        std::thread::sleep(Duration::from_micros(every_us));
        env.tally.set(word::IN_CKPT, 1);
        let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
        env.tally.set(word::IN_CKPT, 0);
        env.tally.add(
            if matches!(r, Ok(0)) {
                word::CKPTS
            } else {
                word::CKPT_INCOMPLETE
            },
            1,
        );
    }
}

fn writer(env: &Env<'_>, spec: &WriterSpec<'_>, p: &Params) -> i32 {
    if p.truncate_at_shutdown {
        return super::shutdown::graceful_writer(env, spec, true);
    }
    let Some(mut conn) = open_writer(env, spec) else {
        return 0;
    };
    if spec.profile.wal_autocheckpoint > 0 {
        install_hook(&conn, env.tally, spec.profile.wal_autocheckpoint);
    }
    std::thread::scope(|s| {
        if let Some(every) = p.passive_every_us {
            s.spawn(move || passive_thread(env, spec, every));
        }
        commit_loop(env, spec, &mut conn, 1, &engine::never);
        env.sender().done(spec.id);
        // The checkpoint thread never ends; a bounded run waits here for its kill.
        if p.passive_every_us.is_some() {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    });
    0
}

pub(crate) fn run(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let mut rng = ctx.rng(0);
    let kp = engine::draw_acks(&mut rng, ACKS.0, ACKS.1, 100);
    let crash = p.crash_before_db_write.map(|max| rng.random_range(1..=max));
    let fault = match (crash.is_some(), p.truncate_at_shutdown) {
        (true, true) => "sigterm+kill-at-op",
        (true, false) => "kill-at-op",
        (false, _) => "sigkill",
    };
    let mut end = Ending::new(fault);
    let mut run = match start(ctx, p, crash, Some(kp)) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(fault, e),
    };
    let cap = Instant::now() + Duration::from_secs(5);
    if let Some(n) = crash {
        end.kill_point = format!("op={n} write:db");
        if p.truncate_at_shutdown {
            let at = run.wait_kill_point(kp).describe(kp);
            end.kill_point = format!("SIGTERM at {at}, then op={n} write:db");
            run.signal(run.pids[0], Signal::SIGTERM);
        }
        run.seal();
        let crashed = run.wait_until(cap, |r| r.all_gone());
        let clean = run.tally.get(word::CLEAN) > 0;
        if clean {
            end.kill_point
                .push_str(" (not reached: the checkpoint ended first, clean exit)");
        } else if !crashed {
            end.kill_point.push_str(" (not reached in 5s: SIGKILLed)");
        }
        end.measure("crashed_inside_checkpoint", u64::from(crashed && !clean));
    } else {
        end.kill_point = run.wait_kill_point(kp).describe(kp);
        end.measure("killed_inside_checkpoint", run.tally.get(word::IN_CKPT));
    }
    run.stop_all();
    let wal_bytes = file_size(&with_suffix(ctx.db(), "-wal"));
    let (ckpts, incomplete) = (
        run.tally.get(word::CKPTS),
        run.tally.get(word::CKPT_INCOMPLETE),
    );
    end.measure("wal_bytes_at_kill", wal_bytes);
    end.measure("wal_over_4mb", u64::from(wal_bytes > 4 << 20));
    end.measure("checkpoints_done", ckpts);
    end.measure("checkpoints_incomplete", incomplete);
    end.measures.push(format!(
        "wal_bytes_at_kill={wal_bytes} checkpoints_done={ckpts} checkpoints_incomplete={incomplete}"
    ));
    end.verification = end.verify(ctx.db(), ctx.workload, &run.events.acked);
    record(ctx, Some(&run), end)
}

fn start<'a>(
    ctx: &Ctx<'a>,
    p: &'a Params,
    crash: Option<u64>,
    kill_point: Option<KillPoint>,
) -> Result<Children<'a>, String> {
    ctx.fresh_database()?;
    let mut run = Children::new(ctx.files, 1, kill_point, ctx.opts.trial_timeout)?;
    let spec = WriterSpec {
        crash_at: match crash {
            Some(op) => Some(CrashAt {
                op,
                filter: "write:db".parse::<OpFilter>()?,
            }),
            None => None,
        },
        ..ctx.writer_spec()
    };
    run.spawn(&[], |env| writer(env, &spec, p))?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::super::engine::testing::{damaged, lab, no_lab_errors, serial};

    #[test]
    fn crashes_inside_checkpoints_lose_nothing_and_the_wal_grows_without_one() {
        let _g = serial();
        let lab = lab(&[]);
        let rows = lab.run("checkpoint", "auto100-crash-in-ckpt", 4);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0);
        for (r, m) in &rows {
            assert_eq!(r.fault, "kill-at-op");
            assert_eq!(m["crashed_inside_checkpoint"], 1, "{}", r.detail);
        }
        let rows = lab.run("checkpoint", "truncate-at-shutdown-crash-in-ckpt", 3);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0);
        let rows = lab.run("checkpoint", "passive-1ms", 3);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0);
        let rows = lab.run("checkpoint", "auto0", 3);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 0);
        for (r, m) in &rows {
            assert_eq!(m["checkpoints_done"], 0, "{}", r.detail);
        }
    }
}
