//! The numbers in docs/fault-layer.md. Not a timed test: run it by hand,
//! `cargo test --release -p torture-preload --test measure -- --ignored --nocapture`.

mod common;

use std::process::Command;
use std::time::Instant;

use common::*;
use torture_preload::{enumerate, CrashPlan, Model};

fn timed(mut cmd: Command) -> f64 {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn measure() {
    // Recorder overhead per operation: 20,000 pwrites of 100 bytes to a folder file.
    const N: usize = 20_000;
    let script = format!(
        "import os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n\
         for i in range({N}): os.pwrite(fd, b'x' * 100, (i % 64) * 100)\n"
    );
    let run = |preload: bool, active: bool| {
        let tmp = new_folder();
        let dir = tmp.path().join("db");
        let mut cmd = Command::new(python());
        cmd.args(["-c", &script]).arg(dir.join("f"));
        if preload {
            cmd.env("LD_PRELOAD", library());
        }
        if active {
            cmd.env("TORTURE_FAULTFS_DIR", &dir)
                .env("TORTURE_FAULTFS_LOG", tmp.path().join("log"));
        }
        (0..3).map(|_| timed_cmd(&cmd)).fold(f64::MAX, f64::min)
    };
    let bare = run(false, false);
    let inert = run(true, false);
    let active = run(true, true);
    eprintln!(
        "{N} pwrites: bare {bare:.3}s, preloaded inert {inert:.3}s, recording {active:.3}s: \
         overhead per op inert {:.2} µs, recording {:.2} µs",
        (inert - bare) / N as f64 * 1e6,
        (active - bare) / N as f64 * 1e6
    );

    // One run of the Python writer: states per run and per second.
    for (mode, sync, commits) in [
        ("wal", "full", 50),
        ("wal", "normal", 50),
        ("delete", "full", 50),
    ] {
        let t = Instant::now();
        let r = record_writer(
            mode,
            &["--commits", &commits.to_string(), "--synchronous", sync],
            &[],
        );
        let record_secs = t.elapsed().as_secs_f64();
        for (name, plan) in [
            (
                "every sync, keep/lose/tear + 2 random",
                CrashPlan {
                    random_per_cut: 2,
                    seed: 7,
                    ..CrashPlan::every_sync(Model::default())
                },
            ),
            ("every op, keep/lose", CrashPlan::every_op(Model::default())),
        ] {
            let t = Instant::now();
            let e = enumerate(&r.start, &r.log, &plan).unwrap();
            let enum_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let tally = check_states(e.states());
            let check_secs = t.elapsed().as_secs_f64();
            eprintln!(
                "{mode}+{sync}, {commits} commits ({} ops, recorded in {record_secs:.2}s), {name}: \
                 {} cuts, {} candidates, {} distinct; hashing {enum_secs:.2}s, build+check {check_secs:.2}s \
                 = {:.0} states/s; intact {} lost {} damaged {}",
                r.log.ops.len(),
                e.cut_points,
                e.candidates,
                e.distinct,
                tally.states as f64 / (enum_secs + check_secs),
                tally.intact,
                tally.lost,
                tally.damaged
            );
        }
    }
}

fn timed_cmd(cmd: &Command) -> f64 {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    timed(c)
}
