//! The recorder: the functions `libtorture_preload.so` exports over libc's, for `LD_PRELOAD`.
//!
//! Inert unless `TORTURE_FAULTFS_DIR` and `TORTURE_FAULTFS_LOG` are set when the process starts:
//! every hook then costs one atomic load before it calls the real function (found with
//! `dlsym(RTLD_NEXT, …)`, so libc's own semantics are kept: cancellation points, errno, vDSO).
//!
//! When active, an operation on a file of the folder runs under the trial's lock (a process mutex,
//! then `flock` on `<log>.lock`): read the pre-image, make the real call, append one record with one
//! `write(2)` on the log's `O_APPEND` descriptor. The lock file also holds a shared page of counters
//! (the next sequence number, the order of process starts, the fault-injection count, the log's
//! length after the last whole record), mapped `MAP_SHARED` into every process of the trial.
//!
//! While a thread is inside a hook, a thread-local flag sends every nested call (the recorder's own
//! reads, writes, stats, allocations that open files) straight to libc: no recursion.
//!
//! This module is compiled into the rlib too. A program that links the rlib (the harness, the tests)
//! therefore also routes these calls through here; without the environment variables they go
//! straight to libc.

#![allow(clippy::missing_safety_doc)]

mod hooks;
mod state;

use state::init_from_env;
pub use state::start_recording;

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = {
    extern "C" fn init() {
        init_from_env();
    }
    init
};
