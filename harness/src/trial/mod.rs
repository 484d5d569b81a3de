//! The trial engine every writer shares: its processes (`children`, through `crate::process`), the
//! kill timer, the writers' acks, the evidence of a failed trial and the one row builder
//! (`record`). What runs in a trial — the built-in workload, a scenario, a user's program — is in
//! `writers/`.

pub mod ack;
pub mod children;
pub mod evidence;
pub mod kill_timer;
pub mod record;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Raw descriptor of an owned fd, for `SlotFiles::close_in_writers`.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}
