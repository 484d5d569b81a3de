//! The settings of `torture exec --fault …` (power-loss, kill-at-op, io-error, disk-full): parsed
//! from the flags, checked before anything runs, saved in `run.json` with the exec options.

use serde::{Deserialize, Serialize};
use torture_preload::{CrashPlan, FailAt, FailKind, Model, Variant};

use crate::verify::verdict::Fault;

/// Where the crash states of a recording are cut (`--crash-states`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashStates {
    /// Just before every effective fsync/fdatasync (file or directory) and at the end.
    EverySync,
    /// Just before every operation that changes what a disk could hold, and at the end.
    EveryOp,
}

impl CrashStates {
    pub fn as_str(self) -> &'static str {
        match self {
            CrashStates::EverySync => "every-sync",
            CrashStates::EveryOp => "every-op",
        }
    }

    pub fn parse(s: &str) -> Result<CrashStates, String> {
        match s {
            "every-sync" => Ok(CrashStates::EverySync),
            "every-op" => Ok(CrashStates::EveryOp),
            other => Err(format!(
                "--crash-states {other}: give every-sync or every-op"
            )),
        }
    }
}

/// `torture exec --fault KIND` and its model flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecFault {
    pub fault: Fault,
    /// Granularity of torn writes (`--sector-size`, a power of two).
    pub sector_size: u32,
    /// `--lying-disk`: no fsync makes anything durable (SQLite promises nothing then).
    pub lying_disk: bool,
    /// False with `--no-powersafe-overwrite`: a torn sector holds garbage, whole.
    pub powersafe_overwrite: bool,
    /// `--fsync-commits-names`: an fsync of any file also makes every earlier create, rename and
    /// unlink durable, as a journaling file system does in practice (ext4, XFS, btrfs). Off: the
    /// strict POSIX model, where only an fsync of the directory does.
    #[serde(default)]
    pub fsync_commits_names: bool,
    pub crash_states: CrashStates,
    /// At most this many distinct states per trial (a seeded sample of them).
    pub max_states: Option<usize>,
    /// io-error / disk-full: the recorder's `<kind>:<n>[:persist]`; `None`: drawn per trial.
    pub fail_at: Option<String>,
    /// How many operations of the drawn kind the probe run made: the draw's range (1 to this).
    #[serde(default)]
    pub fail_range: Option<u64>,
}

/// Crash states checked per trial unless `--max-states` says otherwise: the built-in writers'
/// default, so every subject samples alike.
pub const DEFAULT_MAX_STATES: usize = crate::config::DEFAULT_MAX_STATES as usize;

/// `--max-states N|all` (absent: [`DEFAULT_MAX_STATES`]); `None` is every state.
pub fn parse_max_states(flag: Option<&str>) -> Result<Option<usize>, String> {
    match flag.map(str::trim) {
        None => Ok(Some(DEFAULT_MAX_STATES)),
        Some("all") => Ok(None),
        Some(n) => match n.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "--max-states {n}: give a number of crash states per trial (at least 1), or `all`"
            )),
            Ok(n) => Ok(Some(n)),
        },
    }
}

/// Seeded draws of the failing operation, when `--fail-at` is not given: `sync` (io-error) or
/// `write` (disk-full, persisting) number 1 to as many as the probe run made, or to this without
/// a probe.
pub const FAIL_AT_RANGE: u64 = 20;

impl ExecFault {
    /// From the flags; `Err` is one line naming the fix.
    pub fn from_flags(
        fault: &str,
        sector_size: Option<u32>,
        lying_disk: bool,
        no_powersafe_overwrite: bool,
        crash_states: Option<&str>,
        max_states: Option<&str>,
        fail_at: Option<&str>,
    ) -> Result<ExecFault, String> {
        let max_states = parse_max_states(max_states)?;
        let fault = match Fault::parse(fault) {
            Some(Fault::Sigkill) | None => {
                return Err(format!(
                "--fault {fault}: exec takes power-loss, kill-at-op, io-error or disk-full (SIGKILL is the default without --fault)"
            ))
            }
            Some(f) => f,
        };
        let crash_states = match crash_states {
            Some(s) => CrashStates::parse(s)?,
            None if fault == Fault::KillAtOp => CrashStates::EveryOp,
            None => CrashStates::EverySync,
        };
        let f = ExecFault {
            fault,
            sector_size: sector_size.unwrap_or(Model::default().sector_size),
            lying_disk,
            powersafe_overwrite: !no_powersafe_overwrite,
            fsync_commits_names: false,
            crash_states,
            max_states,
            fail_at: fail_at.map(str::to_string),
            fail_range: None,
        };
        f.validate()?;
        Ok(f)
    }

    /// What can be checked before anything runs.
    pub fn validate(&self) -> Result<(), String> {
        self.model().validate()?;
        if self.max_states == Some(0) {
            return Err("--max-states 0: give at least 1, or `all`".into());
        }
        let power = matches!(
            self.fault,
            Fault::PowerLoss | Fault::IoError | Fault::DiskFull
        );
        if !power && (self.lying_disk || !self.powersafe_overwrite || self.fsync_commits_names) {
            return Err(format!(
                "--lying-disk, --no-powersafe-overwrite and --fsync-commits-names model a power cut; --fault {} keeps everything the program wrote",
                self.fault.as_str()
            ));
        }
        match (&self.fail_at, self.fault) {
            (Some(_), Fault::IoError | Fault::DiskFull) => {
                self.fail_spec(0)?;
            }
            (Some(_), f) => {
                return Err(format!(
                    "--fail-at is for --fault io-error or disk-full, not {}",
                    f.as_str()
                ))
            }
            _ => {}
        }
        Ok(())
    }

    /// The persistence model the crash states are built with.
    pub fn model(&self) -> Model {
        Model {
            sector_size: self.sector_size,
            lying_disk: self.lying_disk,
            powersafe_overwrite: self.powersafe_overwrite,
            fsync_commits_names: self.fsync_commits_names,
            ..Model::default()
        }
    }

    /// The disk behaves as SQLite assumes (no lying fsync, powersafe overwrite).
    pub fn hardware_as_documented(&self) -> bool {
        !self.lying_disk && self.powersafe_overwrite
    }

    /// The cuts and variants of a trial with seed `seed`. kill-at-op keeps everything at each cut
    /// (what a SIGKILL leaves); the others keep, lose, tear, and draw one random mix per cut.
    pub fn plan(&self, seed: u64) -> CrashPlan {
        let mut plan = match self.crash_states {
            CrashStates::EverySync => CrashPlan::every_sync(self.model()),
            CrashStates::EveryOp => CrashPlan::every_op(self.model()),
        };
        if self.fault == Fault::KillAtOp {
            plan.variants = vec![Variant::KeepAll];
        } else {
            plan.variants = vec![Variant::KeepAll, Variant::LoseAll, Variant::TearLast];
            plan.random_per_cut = 1;
        }
        plan.max_states = self.max_states;
        plan.seed = seed;
        plan
    }

    /// `TORTURE_FAULTFS_FAIL_AT` for a trial whose seed is `seed` (io-error, disk-full only): the
    /// given `--fail-at`, or a seeded draw; the errno follows the fault.
    pub fn fail_spec(&self, seed: u64) -> Result<Option<String>, String> {
        let (errno, default_kind, persist) = match self.fault {
            Fault::IoError => ("eio", "sync", ""),
            Fault::DiskFull => ("enospc", "write", ":persist"),
            _ => return Ok(None),
        };
        let spec = match &self.fail_at {
            Some(given) => {
                let base = given.trim();
                if base.contains("eio") || base.contains("enospc") {
                    return Err(format!(
                        "--fail-at {base}: leave the error out (io-error fails with EIO, disk-full with ENOSPC); e.g. sync:3"
                    ));
                }
                let spec = format!("{base}:{errno}");
                spec.parse::<FailAt>().map_err(|e| {
                    format!(
                        "--fail-at {base}: {}",
                        e.split_once(": ").map_or(&e[..], |(_, h)| h)
                    )
                })?;
                spec
            }
            None => format!(
                "{default_kind}:{}:{errno}{persist}",
                1 + seed % self.fail_range.unwrap_or(FAIL_AT_RANGE).max(1)
            ),
        };
        Ok(Some(spec))
    }

    /// The kind of operation a drawn failure counts, if the fault draws one.
    pub fn drawn_kind(&self) -> Option<FailKind> {
        match (&self.fail_at, self.fault) {
            (None, Fault::IoError) => Some(FailKind::Sync),
            (None, Fault::DiskFull) => Some(FailKind::Write),
            _ => None,
        }
    }

    /// How the row names the injected fault, e.g. `sync #3 fails with EIO`.
    pub fn describe_fail(spec: &str) -> String {
        match spec.parse::<FailAt>() {
            Ok(f) => format!(
                "{} #{} {} with {}",
                kind_name(f.kind),
                f.n,
                if f.persist {
                    "and every later one fail"
                } else {
                    "fails"
                },
                if f.errno == libc::ENOSPC {
                    "ENOSPC"
                } else {
                    "EIO"
                }
            ),
            Err(_) => spec.to_string(),
        }
    }
}

fn kind_name(k: FailKind) -> &'static str {
    match k {
        FailKind::Any => "operation",
        FailKind::Write => "write",
        FailKind::Sync => "sync",
        FailKind::Truncate => "truncate",
        FailKind::Open => "creating open",
        FailKind::Unlink => "unlink",
        FailKind::Rename => "rename",
        FailKind::Fallocate => "fallocate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(fault: &str) -> Result<ExecFault, String> {
        ExecFault::from_flags(fault, None, false, false, None, None, None)
    }

    #[test]
    fn bad_settings_are_one_line_naming_the_fix() {
        let e = ExecFault::from_flags("power-loss", Some(1000), false, false, None, None, None)
            .unwrap_err();
        assert!(
            e.contains("--sector-size 1000") && e.contains("power of two"),
            "{e}"
        );
        let e = ExecFault::from_flags(
            "power-loss",
            None,
            false,
            false,
            Some("every-byte"),
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("every-sync or every-op"), "{e}");
        assert!(flags("sigkill")
            .unwrap_err()
            .contains("power-loss, kill-at-op"));
        assert!(flags("flood").is_err());
        let e = ExecFault::from_flags("power-loss", None, false, false, None, None, Some("sync:3"))
            .unwrap_err();
        assert!(e.contains("--fail-at is for"), "{e}");
        let e = ExecFault::from_flags("io-error", None, false, false, None, None, Some("sync:0"))
            .unwrap_err();
        assert!(e.starts_with("--fail-at sync:0"), "{e}");
        for e in [
            &flags("power-loss"),
            &flags("kill-at-op"),
            &flags("disk-full"),
        ] {
            assert!(e.as_ref().unwrap().validate().is_ok());
        }
        assert!(!flags("flood").unwrap_err().contains('\n'), "one line");
    }

    #[test]
    fn crash_states_are_sampled_by_default_and_all_checks_every_one() {
        assert_eq!(
            flags("power-loss").unwrap().max_states,
            Some(DEFAULT_MAX_STATES)
        );
        assert_eq!(parse_max_states(Some("all")), Ok(None));
        assert_eq!(parse_max_states(Some("7")), Ok(Some(7)));
        for bad in ["0", "-1", "many"] {
            let e = parse_max_states(Some(bad)).unwrap_err();
            assert!(
                e.starts_with(&format!("--max-states {bad}")) && e.contains("`all`"),
                "{e}"
            );
        }
    }

    #[test]
    fn kill_at_op_keeps_everything_at_every_op_and_io_errors_draw_their_op() {
        let k = flags("kill-at-op").unwrap();
        assert_eq!(k.crash_states, CrashStates::EveryOp);
        assert_eq!(k.plan(1).variants, vec![Variant::KeepAll]);
        let io = flags("io-error").unwrap();
        assert_eq!(io.fail_spec(4).unwrap().as_deref(), Some("sync:5:eio"));
        let full = flags("disk-full").unwrap();
        assert_eq!(
            full.fail_spec(0).unwrap().as_deref(),
            Some("write:1:enospc:persist")
        );
        assert_eq!(
            ExecFault::describe_fail("sync:5:eio"),
            "sync #5 fails with EIO"
        );
    }
}
