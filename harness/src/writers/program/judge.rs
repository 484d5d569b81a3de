//! A lost commit of a recorded exec trial, judged by its cause as the recording shows it, not by
//! a guess at the program's settings. For the first acknowledged commit missing from a crash state
//! (of each instance) two questions are asked, in order, of states rebuilt at the position of its
//! ack in the recording:
//!
//! 1. **Was it written before its ack?** In the state with every write kept at the ack (what a
//!    process crash keeps), is the commit there? If not, the program acknowledged a commit it had
//!    not written: the program lies, a violation under any fault.
//! 2. **Was it durable before its ack?** In the state with every unsynced write lost at the ack
//!    (file data, and directory entries not yet synced), is it there? If not, it was acknowledged
//!    before any sync covered it: `expected` — unless the program's declared settings are ones
//!    SQLite documents as durable (WAL+FULL, any EXTRA; DuckDB syncs its WAL at every commit), when
//!    it is a violation of that promise.
//!
//! A commit that was durable at its ack and is lost later is a violation: the engine's, or the
//! file-system model's — the interesting case.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

use torture_preload::{
    build_state, write_files, Cut, Log, Model, OpKind, Snapshot, Variant, Writer,
};

use super::check::{self, CheckEnv, Missing};
use super::{Engine, ExecOptions};
use crate::verify::outcome::{Outcome, Verdict};

/// Why an acknowledged commit is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Cause {
    /// Durable when acknowledged (a power cut), or written (a process crash), and lost after.
    LostAfterDurable,
    /// Acknowledged before any sync covered it (power cuts only).
    AckedBeforeDurable,
    /// Acknowledged before it was written at all: the program lies.
    AckedBeforeWritten,
}

impl Cause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cause::LostAfterDurable => "lost-after-durable",
            Cause::AckedBeforeDurable => "acked-before-durable",
            Cause::AckedBeforeWritten => "acked-before-written",
        }
    }
}

/// Whether the program's declared settings are ones for which the engine documents that an
/// acknowledged commit survives a power cut.
pub(crate) fn promises_durability(engine: Engine, journal_mode: &str, synchronous: &str) -> bool {
    match engine {
        Engine::Duckdb => true,
        Engine::Sqlite | Engine::Libsql => {
            synchronous == "extra" || (synchronous == "full" && journal_mode == "wal")
        }
    }
}

/// The verdict of a lost commit of this cause. `power_cut`: the state is a power cut (not the
/// keep-all state of a process crash); `hardware_as_documented`: false for a lying disk or torn
/// sectors of garbage, where SQLite promises nothing.
pub(crate) fn verdict_of(
    cause: Cause,
    power_cut: bool,
    hardware_as_documented: bool,
    durable_declared: bool,
    settings: &str,
) -> (Verdict, String) {
    match cause {
        Cause::AckedBeforeWritten => (
            Verdict::Violation,
            "the program acknowledged a commit before writing it (absent from the state with every write kept at its ack): the program's fault".into(),
        ),
        Cause::AckedBeforeDurable if !power_cut => (
            Verdict::Violation,
            "a written commit was lost without a power cut".into(),
        ),
        Cause::AckedBeforeDurable if !hardware_as_documented => (
            Verdict::Expected,
            "acked before any sync covered it, on a disk that breaks the engine's assumptions".into(),
        ),
        Cause::AckedBeforeDurable if durable_declared => (
            Verdict::Violation,
            format!("acked before any sync covered it, although {settings} is documented durable"),
        ),
        Cause::AckedBeforeDurable => (
            Verdict::Expected,
            format!("acked before any sync covered it ({settings} does not promise it)"),
        ),
        Cause::LostAfterDurable if power_cut && !hardware_as_documented => (
            Verdict::Expected,
            "durable at its ack, lost on a disk that breaks the engine's assumptions".into(),
        ),
        Cause::LostAfterDurable => (
            Verdict::Violation,
            if power_cut {
                "durable at its ack (a sync covered it) and lost after: the engine or the file-system model".into()
            } else {
                "written before its ack and lost without a power cut: the engine's recovery".into()
            },
        ),
    }
}

/// Where each acknowledged commit entered the recording: (instance, commit) → the seq of its ack.
pub(crate) fn ack_positions(
    log: &Log,
    instance_of: impl Fn(&Writer) -> usize,
) -> HashMap<(usize, u64), u64> {
    let mut parser = torture_preload::AckParser::default();
    let mut seen: HashMap<Writer, usize> = HashMap::new();
    let mut at = HashMap::new();
    for op in &log.ops {
        parser.feed(op);
        for (w, list) in &parser.acks.by_writer {
            let done = seen.entry(w.clone()).or_insert(0);
            for &n in &list[*done..] {
                at.entry((instance_of(w), n)).or_insert(op.seq);
            }
            *done = list.len();
        }
    }
    at
}

/// Finds causes, rebuilding and checking the states at ack positions once each.
pub(crate) struct Causes<'a> {
    pub start: &'a Snapshot,
    pub log: &'a Log,
    pub model: Model,
    pub exec: &'a ExecOptions,
    pub positions: HashMap<(usize, u64), u64>,
    pub instances: usize,
    /// A scratch folder for the rebuilt states (emptied for each).
    pub dir: &'a Path,
    pub scratch: &'a Path,
    pub timeout: Duration,
    pub close_fds: &'a [RawFd],
    present: HashMap<(u64, bool, usize, u64), bool>,
}

impl<'a> Causes<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        start: &'a Snapshot,
        log: &'a Log,
        model: Model,
        exec: &'a ExecOptions,
        positions: HashMap<(usize, u64), u64>,
        instances: usize,
        dir: &'a Path,
        scratch: &'a Path,
        timeout: Duration,
        close_fds: &'a [RawFd],
    ) -> Causes<'a> {
        Causes {
            start,
            log,
            model,
            exec,
            positions,
            instances,
            dir,
            scratch,
            timeout,
            close_fds,
            present: HashMap::new(),
        }
    }

    /// The most telling cause among the missing commits of a state (None: no ack position known,
    /// e.g. an ack the lab could not place in the order).
    pub(crate) fn of(&mut self, missing: &Missing, power_cut: bool) -> Option<(Cause, usize, u64)> {
        let mut found: Option<(Cause, usize, u64)> = None;
        for &(instance, n) in missing {
            let Some(&pos) = self.positions.get(&(instance, n)) else {
                continue;
            };
            let cause = if !self.present_at(pos, Variant::KeepAll, instance, n) {
                Cause::AckedBeforeWritten
            } else if power_cut && !self.present_at(pos, Variant::LoseAll, instance, n) {
                Cause::AckedBeforeDurable
            } else {
                Cause::LostAfterDurable
            };
            // A lie first, then a loss after durability (the engine's), then an early ack.
            let rank = |c: Cause| match c {
                Cause::AckedBeforeWritten => 2,
                Cause::LostAfterDurable => 1,
                Cause::AckedBeforeDurable => 0,
            };
            if found.is_none_or(|(c, ..)| rank(cause) > rank(c)) {
                found = Some((cause, instance, n));
            }
        }
        found
    }

    /// Whether commit `n` of `instance` is in the state at `pos` with `variant`.
    fn present_at(&mut self, pos: u64, variant: Variant, instance: usize, n: u64) -> bool {
        let keep = variant == Variant::KeepAll;
        if let Some(&p) = self.present.get(&(pos, keep, instance, n)) {
            return p;
        }
        let p = match build_state(
            self.start,
            self.log,
            Cut { after: pos },
            variant,
            &self.model,
        ) {
            Ok(files) => {
                let db = self.dir.join(self.exec.db_file_name());
                if write_files(self.dir, &files).is_err() {
                    // Cannot tell: count it as present, which never makes a loss look excusable.
                    true
                } else if !db.exists() {
                    // No database file at all (its name never made durable, say): no commit
                    // is in it.
                    false
                } else {
                    let mut acks = vec![Vec::new(); self.instances.max(instance + 1)];
                    acks[instance].push(n);
                    let c = check::verify(&CheckEnv {
                        exec: self.exec,
                        db: &db,
                        acked: n,
                        acks: &acks,
                        timeout: self.timeout,
                        scratch: self.scratch,
                        close_fds: self.close_fds,
                    });
                    // A state the check cannot read (corrupt, unopenable, the check failing)
                    // says nothing about the commit: taken as present, so the loss is judged by
                    // the strict rule (lost after durable) rather than excused.
                    match c.outcome {
                        Outcome::Intact | Outcome::Atomicity | Outcome::LostCommit => {
                            c.missing.is_empty()
                        }
                        _ => true,
                    }
                }
            }
            Err(_) => true,
        };
        self.present.insert((pos, keep, instance, n), p);
        p
    }
}

/// Which instance each writer of acks is: a process is its instance's when its chain of parents
/// (the recorder's `Start` records) reaches that instance's leader; an `ack N ID` writer, and any
/// process the chain does not place, is instance 0.
pub(crate) fn instances_of(log: &Log, leaders: &[u32]) -> impl Fn(&Writer) -> usize {
    let mut parent = std::collections::HashMap::new();
    for o in &log.ops {
        if let OpKind::Start { ppid, .. } = &o.kind {
            parent.entry(o.pid).or_insert(*ppid);
        }
    }
    let leaders: Vec<u32> = leaders.to_vec();
    move |w: &Writer| {
        let Writer::Pid(mut pid) = *w else {
            return 0;
        };
        for _ in 0..64 {
            if let Some(i) = leaders.iter().position(|&l| l == pid) {
                return i;
            }
            match parent.get(&pid) {
                Some(&p) if p != pid => pid = p,
                _ => break,
            }
        }
        0
    }
}

/// What the rules need of a variant saved by name in evidence (`keep-all`, `lose-all`, …): whether
/// it kept everything (a process crash) or is a power cut (any other stands for all of them).
pub(crate) fn variant_class(name: &str) -> Variant {
    if name == "keep-all" {
        Variant::KeepAll
    } else {
        Variant::LoseAll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_is_promised_as_sqlite_documents_it() {
        assert!(promises_durability(Engine::Sqlite, "wal", "full"));
        assert!(promises_durability(Engine::Sqlite, "delete", "extra"));
        assert!(!promises_durability(Engine::Sqlite, "wal", "normal"));
        assert!(!promises_durability(Engine::Sqlite, "delete", "full"));
        assert!(!promises_durability(Engine::Sqlite, "wal", "?"));
        assert!(promises_durability(Engine::Duckdb, "?", "?"));
    }

    #[test]
    fn each_cause_has_its_verdict() {
        let v = |c, power, hw, declared| verdict_of(c, power, hw, declared, "x").0;
        // The program's lie is a violation under any fault, whatever it declared.
        for power in [true, false] {
            assert_eq!(
                v(Cause::AckedBeforeWritten, power, true, false),
                Verdict::Violation
            );
        }
        assert_eq!(
            v(Cause::AckedBeforeDurable, true, true, false),
            Verdict::Expected
        );
        assert_eq!(
            v(Cause::AckedBeforeDurable, true, true, true),
            Verdict::Violation
        );
        assert_eq!(
            v(Cause::AckedBeforeDurable, true, false, true),
            Verdict::Expected
        );
        assert_eq!(
            v(Cause::LostAfterDurable, true, true, false),
            Verdict::Violation
        );
        assert_eq!(
            v(Cause::LostAfterDurable, false, true, false),
            Verdict::Violation
        );
        assert_eq!(
            v(Cause::LostAfterDurable, true, false, false),
            Verdict::Expected
        );
    }
}
