//! The line protocol writers use to tell their slot what happened, over one pipe shared by every writer
//! of a trial. Each message is one `write(2)` of less than PIPE_BUF bytes, so lines from different
//! processes and threads never interleave.
//!
//! ```text
//! ready <writer> <journal_mode> <synchronous> <locking_mode> <mmap_size>
//! ack <writer> <seq>            sent only after COMMIT returned
//! busy <writer>                 a transaction failed with SQLITE_BUSY/LOCKED and will be retried
//! error <writer> <code> <text>  the writer gave up for a reason of its own
//! done <writer>                 the writer reached its commit cap without being killed
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::BorrowedFd;

use torture_workloads::InForce;

/// The writer side: formats a message and writes it with a single syscall.
pub struct AckSender<'a> {
    fd: BorrowedFd<'a>,
    buf: Vec<u8>,
}

impl<'a> AckSender<'a> {
    pub fn new(fd: BorrowedFd<'a>) -> Self {
        AckSender {
            fd,
            buf: Vec::with_capacity(128),
        }
    }

    pub fn ready(&mut self, writer: u32, f: &InForce) {
        self.send(format_args!(
            "ready {writer} {} {} {} {}\n",
            f.journal_mode, f.synchronous, f.locking_mode, f.mmap_size
        ));
    }

    pub fn ack(&mut self, writer: u32, seq: u64) {
        self.send(format_args!("ack {writer} {seq}\n"));
    }

    pub fn busy(&mut self, writer: u32) {
        self.send(format_args!("busy {writer}\n"));
    }

    pub fn done(&mut self, writer: u32) {
        self.send(format_args!("done {writer}\n"));
    }

    pub fn error(&mut self, writer: u32, code: &str, text: &str) {
        let mut text: String = text
            .chars()
            .map(|c| if c == '\n' { ' ' } else { c })
            .collect();
        if text.len() > 400 {
            let mut cut = 400;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.send(format_args!("error {writer} {code} {text}\n"));
    }

    fn send(&mut self, msg: std::fmt::Arguments<'_>) {
        self.buf.clear();
        let _ = self.buf.write_fmt(msg);
        // A failed write means the slot is gone; the writer will be killed anyway.
        let _ = nix::unistd::write(self.fd, &self.buf);
    }
}

/// The slot side: everything the writers of one trial reported.
#[derive(Debug, Default)]
pub struct TrialEvents {
    /// Highest acknowledged `seq` per writer.
    pub acked: BTreeMap<u32, u64>,
    pub acks_total: u64,
    pub busy: u64,
    /// The first `ready` report: the pragmas in force.
    pub in_force: Option<InForce>,
    /// Writers whose pragmas in force differ from the first report.
    pub disagreeing_writers: Vec<u32>,
    /// `(writer, code, text)` of every `error`.
    pub errors: Vec<(u32, String, String)>,
    pub done: u32,
    partial: Vec<u8>,
}

impl TrialEvents {
    /// Feeds bytes read from the pipe; complete lines are parsed, a partial one is kept.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            let line = String::from_utf8_lossy(&self.partial[start..end]).into_owned();
            self.parse_line(&line);
            start = end + 1;
        }
        self.partial.drain(..start);
    }

    fn parse_line(&mut self, line: &str) {
        let mut parts = line.splitn(4, ' ');
        let kind = parts.next().unwrap_or("");
        let writer: u32 = parts.next().and_then(|w| w.parse().ok()).unwrap_or(u32::MAX);
        match kind {
            "ack" => {
                if let Some(seq) = parts.next().and_then(|s| s.parse::<u64>().ok()) {
                    let e = self.acked.entry(writer).or_insert(0);
                    *e = (*e).max(seq);
                    self.acks_total += 1;
                }
            }
            "busy" => self.busy += 1,
            "done" => self.done += 1,
            "ready" => {
                let fields: Vec<&str> = line.split(' ').skip(2).collect();
                if let [journal_mode, synchronous, locking_mode, mmap_size] = fields[..] {
                    let f = InForce {
                        journal_mode: journal_mode.to_string(),
                        synchronous: synchronous.to_string(),
                        locking_mode: locking_mode.to_string(),
                        mmap_size: mmap_size.parse().unwrap_or(0),
                    };
                    match &self.in_force {
                        None => self.in_force = Some(f),
                        Some(first) if *first != f => self.disagreeing_writers.push(writer),
                        Some(_) => {}
                    }
                }
            }
            "error" => {
                let code = parts.next().unwrap_or("").to_string();
                let text = parts.next().unwrap_or("").to_string();
                self.errors.push((writer, code, text));
            }
            _ => {}
        }
    }

    /// Reads what is available on a non-blocking pipe. Returns false at end of file.
    pub fn read_from(&mut self, fd: BorrowedFd<'_>) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.feed(&buf[..n]);
                    if n < buf.len() {
                        return true;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_are_parsed_once() {
        let mut ev = TrialEvents::default();
        ev.feed(b"ready 0 wal full normal 0\nack 0 1\nack 0 ");
        ev.feed(b"2\nbusy 1\nack 1 1\nerror 1 SQLITE_IOERR disk I/O error\n");
        assert_eq!(ev.acks_total, 3);
        assert_eq!(ev.acked[&0], 2);
        assert_eq!(ev.acked[&1], 1);
        assert_eq!(ev.busy, 1);
        assert_eq!(ev.in_force.as_ref().unwrap().journal_mode, "wal");
        assert_eq!(ev.errors[0].1, "SQLITE_IOERR");
        assert_eq!(ev.errors[0].2, "disk I/O error");
    }

    #[test]
    fn a_writer_reporting_other_pragmas_is_noted() {
        let mut ev = TrialEvents::default();
        ev.feed(b"ready 0 wal full normal 0\nready 1 delete full normal 0\n");
        assert_eq!(ev.disagreeing_writers, vec![1]);
    }
}
