//! Scenario `checkpoint` (seeds 001, 002): checkpoint policies in WAL mode — wal_autocheckpoint
//! 0/1000/10000, a thread running `PRAGMA wal_checkpoint(PASSIVE)` every millisecond, a TRUNCATE
//! checkpoint at shutdown — under SIGKILL at a random point, and crashes placed exactly inside a
//! checkpoint (the writer SIGKILLs itself just before its N-th write to the database file, which in
//! WAL mode only checkpoints write). Also measured: how large the WAL grew.
//!
//! The `-power` variants cut the power inside checkpoints, on the file-operation recorder
//! (`power.rs`): one writer makes [`POWER_COMMITS`] commits with wal_autocheckpoint=100 (about five
//! checkpoints), or with a PASSIVE checkpoint thread, or ends with `wal_checkpoint(TRUNCATE)` and a
//! close (seed 001's fix), all recorded once; every crash state of the recording is checked, three
//! cuts inside every checkpoint among them (`cuts_in_checkpoint`), in WAL+NORMAL (seed 002's
//! "power loss during checkpoint can corrupt") and WAL+FULL.

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
use super::{base_profile, power, Kind, Scenario, Variant};
use crate::engine::with_suffix;
use crate::faults::kill_point::KillPoint;
use crate::faults::{CrashAt, OpFilter};
use crate::verify::outcome::TrialRecord;

pub(crate) struct Params {
    /// A thread checkpointing PASSIVE at this period (µs).
    pub passive_every_us: Option<u64>,
    /// SIGTERM at the kill point; the writer runs `wal_checkpoint(TRUNCATE)` and closes.
    pub truncate_at_shutdown: bool,
    /// Crash just before the N-th database write, N in `1..=max`; `None`: SIGKILL at the kill point.
    pub crash_before_db_write: Option<u64>,
    /// A power cut on the recorder: [`POWER_COMMITS`] commits recorded, every crash state checked.
    pub power_loss: bool,
}

/// Commits the writer of a `-power` variant makes under the recorder: with wal_autocheckpoint=100
/// (about 3 WAL frames a commit) about five checkpoints.
pub(crate) const POWER_COMMITS: u64 = 150;

/// Acknowledgements before the kill: enough for the WAL to pass 1,000 frames (~3 per commit).
const ACKS: (u64, u64) = (1, 1200);
/// The passive thread's period: seed 002's five minutes, scaled to trials of a few milliseconds.
const PASSIVE_US: u64 = 1000;

pub(crate) fn scenario() -> Scenario {
    let mut variants = Vec::new();
    let mut add_sync = |name: &str, sync: Synchronous, auto: u32, p: Params, what: &str| {
        let mut profile = base_profile(JournalMode::Wal, sync);
        profile.wal_autocheckpoint = auto;
        variants.push(Variant::new(
            "checkpoint",
            name,
            format!(
                "journal_mode=wal synchronous={} wal_autocheckpoint={auto} {what}",
                sync.as_str()
            ),
            profile,
            Kind::Checkpoint(p),
        ));
    };
    let mut add = |name: &str, auto: u32, p: Params, what: &str| {
        add_sync(name, Synchronous::Normal, auto, p, what)
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
                power_loss: false,
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
            power_loss: false,
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
            power_loss: false,
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
            power_loss: false,
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
            power_loss: false,
        },
        "shutdown=SIGTERM after 1-1200 acks, handler runs wal_checkpoint(TRUNCATE) and closes; \
         kill=SIGKILL before the N-th db write (N in 1..300): inside that checkpoint",
    );
    // Power cuts inside checkpoints, on the recorder: WAL+NORMAL (seed 002's claim) and WAL+FULL;
    // synchronous=OFF is the positive control.
    let power = |passive_every_us, truncate_at_shutdown| Params {
        passive_every_us,
        truncate_at_shutdown,
        crash_before_db_write: None,
        power_loss: true,
    };
    let cut = format!(
        "fault=power-loss commits={POWER_COMMITS} (recorded once, every crash state checked, cuts inside every checkpoint)"
    );
    for sync in [Synchronous::Normal, Synchronous::Full, Synchronous::Off] {
        let s = sync.as_str();
        add_sync(
            &format!("auto100-{s}-power"),
            sync,
            100,
            power(None, false),
            &cut,
        );
        if sync == Synchronous::Off {
            continue;
        }
        add_sync(
            &format!("passive-1ms-{s}-power"),
            sync,
            0,
            power(Some(PASSIVE_US), false),
            &format!("checkpoint_thread=PASSIVE every {PASSIVE_US}us {cut}"),
        );
        add_sync(
            &format!("truncate-at-shutdown-{s}-power"),
            sync,
            0,
            power(None, true),
            &format!("shutdown=wal_checkpoint(TRUNCATE) then close, after the commits; {cut}"),
        );
    }
    Scenario {
        name: "checkpoint",
        summary: "wal_autocheckpoint 0/1000/10000, a PASSIVE checkpoint thread, TRUNCATE at shutdown; crashes and power cuts inside checkpoints; WAL size",
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
    if p.power_loss {
        return run_power_loss(ctx, p);
    }
    let mut rng = ctx.rng(0);
    let kp = engine::draw_acks(&mut rng, ACKS.0, ACKS.1, 100);
    let crash = p.crash_before_db_write.map(|max| rng.random_range(1..=max));
    let fault = match (crash.is_some(), p.truncate_at_shutdown) {
        (true, true) => "sigterm+kill-at-op",
        (true, false) => "kill-at-op",
        (false, _) => "sigkill",
    };
    let mut end = Ending::new(fault);
    // A crash placed by operation count needs no kill point, unless a SIGTERM comes first.
    let armed = (crash.is_none() || p.truncate_at_shutdown).then_some(kp);
    let mut run = match start(ctx, p, crash, armed) {
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

/// One writer recorded under the recorder: its commits (SQLite's autocheckpoints among them), a
/// PASSIVE thread's checkpoints, or a closing TRUNCATE checkpoint; then every crash state.
fn run_power_loss(ctx: &Ctx<'_>, p: &Params) -> (TrialRecord, Metrics) {
    let mut rec = match power::Recording::new(ctx, 1) {
        Ok(r) => r,
        Err(e) => return ctx.setup_failed(power::FAULT, e),
    };
    let mut end = Ending::new(power::FAULT);
    let db = rec.db.clone();
    let spec = WriterSpec {
        db: &db,
        max_commits: POWER_COMMITS,
        ..ctx.writer_spec()
    };
    let spawned = if let Some(every) = p.passive_every_us {
        rec.spawn(0, |env, ack| {
            std::thread::scope(|s| {
                s.spawn(|| passive_thread(env, &spec, every));
                power::write_and_hold(env, &spec, ack);
            })
        })
    } else if p.truncate_at_shutdown {
        rec.spawn(0, |env, ack| truncate_and_close(env, &spec, ack))
    } else {
        rec.spawn_writers(&spec, 1, 1, POWER_COMMITS)
    };
    if let Err(e) = spawned {
        end.setup_error = Some(e);
    }
    let run = rec.finish_and_check(ctx, &mut end);
    let (ckpts, incomplete) = (
        run.tally.get(word::CKPTS),
        run.tally.get(word::CKPT_INCOMPLETE),
    );
    if p.passive_every_us.is_some() || p.truncate_at_shutdown {
        // The thread's or the shutdown's own checkpoints; the recording's (autocheckpoints too) are
        // counted in the crash states' words below.
        end.measure("checkpoints_done", ckpts);
        end.measure("checkpoints_incomplete", incomplete);
        end.measures.push(format!(
            "checkpoints_done={ckpts} checkpoints_incomplete={incomplete}"
        ));
    }
    record(ctx, Some(&run), end)
}

/// Seed 001's fix, recorded: the commits, then `wal_checkpoint(TRUNCATE)` and a clean close; `done`
/// only after the close, so the recording holds the whole shutdown.
fn truncate_and_close(env: &Env<'_>, spec: &WriterSpec<'_>, ack: std::os::fd::RawFd) {
    if let Some(mut conn) = open_writer(env, spec) {
        crate::writers::workload::commit_loop_with(
            env,
            spec,
            &mut conn,
            1,
            &engine::never,
            crate::writers::workload::OnError::Report,
            Some(ack),
        );
        let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        env.tally.add(
            if matches!(r, Ok(0)) {
                word::CKPTS
            } else {
                word::CKPT_INCOMPLETE
            },
            1,
        );
        if conn.close().is_ok() {
            env.tally.add(word::CLEAN, 1);
        }
    }
    env.sender().done(spec.id);
}

fn start<'a>(
    ctx: &Ctx<'a>,
    p: &'a Params,
    crash: Option<u64>,
    kill_point: Option<KillPoint>,
) -> Result<Children<'a>, String> {
    ctx.fresh_database()?;
    let mut run = Children::new(ctx.files, 1, kill_point, ctx.opts.trial_timeout)?;
    run.own_signals.push(nix::sys::signal::Signal::SIGTERM);
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
    use crate::verify::outcome::{Outcome, Verdict};

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

    #[test]
    fn power_cuts_inside_wal_full_checkpoints_lose_nothing() {
        let _g = serial();
        let lab = lab(&[]);
        for (v, n) in [
            ("auto100-full-power", 2),
            ("passive-1ms-full-power", 1),
            ("truncate-at-shutdown-full-power", 1),
        ] {
            let rows = lab.run("checkpoint", v, n);
            no_lab_errors(&rows);
            assert_eq!(damaged(&rows), 0, "{v}: {:?}", rows[0].0.detail);
            for (r, m) in &rows {
                assert_eq!((r.fault.as_str(), r.verdict), ("power-loss", Verdict::Ok));
                assert_eq!(r.damaged_states, 0, "{}", r.detail);
                // The recording's checkpoints happened and cuts fell inside them.
                assert!(m["checkpoints"] > 0, "{v}: {}", r.detail);
                assert!(r.cuts_in_checkpoint > 0, "{v}: {}", r.detail);
                assert!(r.crash_states >= r.cuts_in_checkpoint);
            }
        }
    }

    #[test]
    fn power_cuts_inside_wal_normal_checkpoints_may_lose_commits_but_never_corrupt() {
        let _g = serial();
        let lab = lab(&[]);
        for (v, n) in [("auto100-normal-power", 2), ("passive-1ms-normal-power", 1)] {
            let rows = lab.run("checkpoint", v, n);
            no_lab_errors(&rows);
            for (r, m) in &rows {
                assert!(
                    matches!(r.outcome, Outcome::Intact | Outcome::LostCommit),
                    "{v}: {}",
                    r.detail
                );
                assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
                assert!(m["checkpoints"] > 0, "{v}: {}", r.detail);
                assert!(r.cuts_in_checkpoint > 0, "{v}: {}", r.detail);
            }
        }
    }

    #[test]
    fn checkpoints_without_fsync_or_on_a_lying_disk_are_caught() {
        let _g = serial();
        let lab = lab(&[]);
        let rows = lab.run("checkpoint", "auto100-off-power", 2);
        no_lab_errors(&rows);
        assert_eq!(damaged(&rows), 2, "{:?}", rows[0].0.detail);
        for (r, _) in &rows {
            assert!(r.damaged_states > 0, "{}", r.detail);
            assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
        }
        let lab = super::super::engine::testing::lab(&["--lying-disk"]);
        let rows = lab.run("checkpoint", "auto100-full-power", 2);
        no_lab_errors(&rows);
        assert!(damaged(&rows) > 0, "{:?}", rows[0].0.detail);
        for (r, _) in &rows {
            // A disk that ignores fsync is outside SQLite's promise: expected, not a violation.
            assert_ne!(r.verdict, Verdict::Violation, "{}", r.detail);
        }
    }
}
