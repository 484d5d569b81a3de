//! The writer: what runs in a forked child. It opens the database only after the fork, applies the
//! profile, reads the pragmas back, and runs the workload until it is killed, acknowledging each
//! commit to its slot only after COMMIT returned.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use std::path::Path;

use rusqlite::OpenFlags;
use torture_workloads::{Profile, Workload};

use crate::faults::recorded::{self, RecordingPlan};
use crate::faults::{self, FaultConfig, OpFilter};
use crate::lab::seed;
use crate::trial::ack::{AckBoard, AckSender};
use crate::trial::process::exit_now;
use crate::verify::sqlite_error;

/// Everything a writer process needs, fixed before the fork.
pub struct WriterPlan<'a> {
    pub db: &'a Path,
    pub profile: &'a Profile,
    pub workload: Workload,
    pub trial_seed: u64,
    pub max_commits: u64,
    pub board: &'a AckBoard,
    /// Op-indexed faults: the fault layer's configuration, applied in the child before opening.
    pub fault: Option<FaultConfig>,
    /// After the last commit, wait to be killed instead of closing (a bounded workload that ends in
    /// a crash, not a clean shutdown that would checkpoint).
    pub hold_when_done: bool,
    /// Count non-busy errors (injected I/O errors) and go on, as an application would.
    pub carry_on_errors: bool,
    /// Which operations to count and report at the end.
    pub op_filter: OpFilter,
    /// Power loss on the file-operation recorder: started in the child right after the fork, and
    /// every commit acknowledged in its log too.
    pub recording: Option<&'a RecordingPlan>,
}

/// Runs writer process `process_index` (its threads are writers `process_index * connections + t`)
/// and exits the process. Never returns: a forked child must not unwind into its parent's code.
pub fn run_writer_process(plan: &WriterPlan<'_>, process_index: u32, ack: BorrowedFd<'_>) -> ! {
    if let Some(cfg) = &plan.fault {
        if let Err(e) = faults::configure(cfg.clone()) {
            AckSender::new(ack).error(0, "FAULT_SETUP", &e.to_string());
            exit_now(0);
        }
    }
    let log_ack = match plan
        .recording
        .map(|r| recorded::start_in_writer(r, process_index))
    {
        None => None,
        Some(Ok(fd)) => Some(fd),
        Some(Err(e)) => {
            AckSender::new(ack).error(0, "RECORDER_SETUP", &e);
            exit_now(0);
        }
    };
    let conns = plan.profile.connections;
    let first = process_index * conns;
    if conns == 1 {
        run_connection(plan, first, ack, log_ack);
    } else {
        std::thread::scope(|s| {
            for t in 0..conns {
                s.spawn(move || run_connection(plan, first + t, ack, log_ack));
            }
        });
    }
    if plan.hold_when_done {
        // The slot kills us; an open connection must not be closed (and checkpointed) first.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    exit_now(0)
}

/// One connection's life: open, configure, then commit until killed or capped.
fn run_connection(plan: &WriterPlan<'_>, writer: u32, fd: BorrowedFd<'_>, log_ack: Option<RawFd>) {
    let mut tx = AckSender::new(fd);
    let vfs = plan.fault.is_some().then_some(faults::VFS_NAME);
    let opened = crate::engine::open(plan.db, OpenFlags::default(), vfs);
    let mut conn = match opened {
        Ok(c) => c,
        Err(e) => return tx.error(writer, &sqlite_error::code_name(&e), &e.to_string()),
    };
    let in_force = loop {
        match plan.profile.apply(&conn) {
            Ok(f) => break f,
            // Several connections switching modes at once: the losers are told BUSY.
            Err(e) if sqlite_error::is_busy(&e) => {
                plan.board.record_busy();
                std::thread::yield_now();
            }
            Err(e) => return tx.error(writer, &sqlite_error::code_name(&e), &e.to_string()),
        }
    };
    tx.ready(writer, &in_force);
    let mut rng = seed::rng_for(
        plan.trial_seed,
        seed::WRITER_STREAM_BASE + u64::from(writer),
    );
    let mut seq = 1;
    let mut failures_in_a_row = 0;
    while seq <= plan.max_commits {
        match plan
            .workload
            .run_transaction(&mut conn, writer, seq, &mut rng)
        {
            Ok(()) => {
                if let Some(log_fd) = log_ack {
                    recorded::log_ack(log_fd, writer, seq);
                }
                plan.board.acknowledge(writer, seq, fd.as_raw_fd());
                seq += 1;
                failures_in_a_row = 0;
            }
            Err(e) if sqlite_error::is_busy(&e) => {
                plan.board.record_busy();
                std::thread::yield_now();
            }
            Err(_) if plan.carry_on_errors && failures_in_a_row < 100 => {
                // An application retries after a failed write; a persistent fault ends the run
                // after a hundred failures in a row.
                plan.board.record_io_error();
                failures_in_a_row += 1;
            }
            Err(_) if plan.carry_on_errors => {
                plan.board.record_io_error();
                break;
            }
            Err(e) => return tx.error(writer, &sqlite_error::code_name(&e), &e.to_string()),
        }
    }
    if plan.fault.is_some() {
        tx.ops(writer, faults::ops_matching_so_far(plan.op_filter));
    }
    tx.done(writer);
}
