//! A slot: a child process of the parent that runs trials one after another, as the parent hands it
//! trial indices, and sends back one JSON line per finished trial. Slots give parallelism while every
//! process that forks stays single-threaded, and the parent never touches a database.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::options::RunOptions;
use crate::process::exit_now;
use crate::trial::{self, children::SlotFiles};
use crate::verify::outcome::Finished;

/// The body of slot process `slot`. Never returns.
pub fn run_slot(
    opts: &RunOptions,
    slot: usize,
    work_dir: &Path,
    commands: OwnedFd,
    results: OwnedFd,
) -> ! {
    crate::engine::install(&opts.spec.engine);
    // Its own process group: the parent kills a slot and its writers with one killpg, and a Ctrl-C
    // at the terminal reaches only the parent, which decides what to do.
    let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    // A user's program (exec) runs as it would in production: on every CPU, at normal priority,
    // and the slot does not outrank it. The built-in writers share their slot's CPU (see below).
    if opts.spec.exec.is_none() {
        pin_to_one_cpu(slot);
        wake_on_time();
    }
    let dir = work_dir.join(format!("slot-{slot}"));
    if std::fs::create_dir_all(&dir).is_err() {
        exit_now(4);
    }
    let max_writers = opts.profiles.iter().map(|p| p.writers()).max().unwrap_or(1);
    let close = vec![trial::raw(&commands), trial::raw(&results)];
    let Ok(files) = SlotFiles::new(dir, max_writers, close) else {
        exit_now(4);
    };
    let sqlite_version = crate::engine::version();
    let sqlite_version = sqlite_version.as_str();
    let mut templates: HashMap<usize, Result<PathBuf, String>> = HashMap::new();
    let mut commands = File::from(commands);
    let mut results = File::from(results);
    let mut buf = [0u8; 8];
    let mut line = Vec::with_capacity(1024);
    loop {
        if commands.read_exact(&mut buf).is_err() {
            exit_now(0);
        }
        let index = u64::from_le_bytes(buf);
        let profile_index = (index % opts.profiles.len() as u64) as usize;
        let template = templates.entry(profile_index).or_insert_with(|| {
            if opts.exec.is_some() || opts.scenario.is_some() {
                return Err("exec and scenario trials make their own databases".into());
            }
            let path = files.dir.join(format!("start-{profile_index}.db"));
            crate::writers::workload::make_starting_database(
                &path,
                &opts.profiles[profile_index],
                opts.workload,
            )
            .map(|()| path)
            .map_err(|e| e.to_string())
        });
        let finished: Finished = match (&opts.exec, &opts.scenario) {
            (_, Some(name)) => {
                crate::writers::scenario::run_trial(opts, name, index, &files, sqlite_version)
                    .into()
            }
            (Some(exec), None) if exec.fault.is_some() => crate::writers::program::run_recorded(
                opts,
                exec,
                exec.fault.as_ref().expect("matched"),
                index,
                &files,
                sqlite_version,
            ),
            (Some(exec), None) => crate::writers::program::run_trial(
                opts,
                exec,
                exec.kill_window.unwrap_or_default(),
                index,
                &files,
                sqlite_version,
            )
            .into(),
            (None, None) => crate::writers::builtin::run_trial(
                opts,
                index,
                &files,
                template
                    .as_ref()
                    .map(PathBuf::as_path)
                    .map_err(String::as_str),
                sqlite_version,
            )
            .into(),
        };
        // Hand freed memory back to the kernel: the next fork then copies fewer page tables and the
        // writer takes fewer copy-on-write faults.
        // SAFETY: malloc_trim only releases free memory.
        unsafe { libc::malloc_trim(0) };
        line.clear();
        if serde_json::to_writer(&mut line, &finished).is_err() {
            exit_now(5);
        }
        line.push(b'\n');
        if results.write_all(&line).is_err() {
            exit_now(0);
        }
    }
}

/// Pins the slot (and so its writers, which inherit it) to one CPU. The slot sleeps while its writer
/// runs and the writer is dead while the slot verifies, so they never need two CPUs at once; on one
/// CPU the wake-up at the kill threshold preempts the writer at once instead of crossing cores,
/// and the oracle reads pages still warm in that core's cache.
fn pin_to_one_cpu(slot: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(slot % cpus, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Makes the slot's wake-ups punctual, so a kill lands where it was drawn. The slot sleeps while its
/// writer runs on the same CPU; when the kill point comes, the scheduler may let the writer finish
/// its time slice first (measured: 4% of trials overshot by 30-80 commits). A real-time slot
/// (`SCHED_FIFO`, granted to root or under `ulimit -r`) preempts its writer at once; its children
/// are reset to normal scheduling. Without the privilege the slot stays normal, and timer slack is
/// cut to 1 µs so the kill delay is not rounded up by 50 µs.
fn wake_on_time() {
    let rt = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain syscalls on this process, with valid arguments.
    unsafe {
        let _ = libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &rt);
        let _ = libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}
