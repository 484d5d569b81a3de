//! Tests of `power_loss.rs`, kept beside it (the module itself is long enough).

use super::*;
use crate::faults::config::FileKind;
use rand::SeedableRng;

fn write(
    op: u64,
    path: &Path,
    offset: u64,
    old: &[u8],
    new_len: u32,
    old_size: u64,
) -> LogRecord {
    LogRecord {
        op,
        pid: 1,
        file: FileKind::MainDb,
        path: path.to_path_buf(),
        event: LogEvent::Write {
            offset,
            len: new_len,
            old_size,
            pre_image: old.to_vec(),
        },
    }
}

fn sync(op: u64, path: &Path, kind: FileKind, dir_sync: bool) -> LogRecord {
    LogRecord {
        op,
        pid: 1,
        file: kind,
        path: path.to_path_buf(),
        event: LogEvent::Sync { flags: 2, dir_sync },
    }
}

fn model(keep: f64, torn: f64) -> PowerLossModel {
    PowerLossModel {
        sector_size: 4,
        keep_probability: keep,
        torn_probability: torn,
        ..PowerLossModel::default()
    }
}

/// A file that went AAAA → (sync) → BBBB → CCCC at the same offset, plus an append.
fn overlapping(dir: &Path) -> (PathBuf, Vec<LogRecord>) {
    let path = dir.join("f.db");
    std::fs::write(&path, b"CCCCDDDD").unwrap();
    let log = vec![
        write(1, &path, 0, b"", 4, 0), // AAAA
        sync(2, &path, FileKind::MainDb, false),
        write(3, &path, 0, b"AAAA", 4, 4), // BBBB
        write(4, &path, 0, b"BBBB", 4, 4), // CCCC
        write(5, &path, 4, b"", 4, 4),     // DDDD
    ];
    (path, log)
}

#[test]
fn losing_everything_unsynced_restores_the_last_synced_state() {
    let dir = tempfile::tempdir().unwrap();
    let (path, log) = overlapping(dir.path());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let r = simulate_power_loss(&log, u64::MAX, &model(0.0, 0.0), &mut rng).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"AAAA");
    assert_eq!((r.writes_kept, r.writes_lost), (0, 3));
    assert_eq!(r.files_rewound, vec![path]);
}

#[test]
fn keeping_everything_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, log) = overlapping(dir.path());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let r = simulate_power_loss(&log, u64::MAX, &model(1.0, 0.0), &mut rng).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"CCCCDDDD");
    assert!(r.files_rewound.is_empty());
}

#[test]
fn every_outcome_of_overlapping_writes_is_a_state_the_disk_could_hold() {
    // Byte range 0..4 must be AAAA, BBBB or CCCC (never a mix with torn-free 4-byte sectors),
    // and the append is either there in full or the file is 4 bytes long.
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let dir = tempfile::tempdir().unwrap();
        let (path, log) = overlapping(dir.path());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        simulate_power_loss(&log, u64::MAX, &model(0.5, 0.0), &mut rng).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            [&b"AAAA"[..], b"BBBB", b"CCCC"].contains(&&bytes[..4]),
            "{bytes:?}"
        );
        assert!(bytes.len() == 4 || &bytes[4..] == b"DDDD", "{bytes:?}");
        seen.insert(bytes);
    }
    assert!(
        seen.len() >= 4,
        "the model explores several states: {seen:?}"
    );
}

#[test]
fn a_torn_write_keeps_a_prefix_or_a_suffix_of_its_sectors() {
    for seed in 0..32 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        std::fs::write(&path, b"NNNNNNNNNNNN").unwrap();
        let log = vec![write(1, &path, 0, b"OOOOOOOOOOOO", 12, 12)];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let r = simulate_power_loss(&log, u64::MAX, &model(1.0, 1.0), &mut rng).unwrap();
        assert_eq!(r.writes_torn, 1);
        let bytes = std::fs::read(&path).unwrap();
        let sectors: Vec<&[u8]> = bytes.chunks(4).collect();
        let ok = [
            [b"NNNN", b"OOOO", b"OOOO"],
            [b"NNNN", b"NNNN", b"OOOO"],
            [b"OOOO", b"NNNN", b"NNNN"],
            [b"OOOO", b"OOOO", b"NNNN"],
        ]
        .iter()
        .any(|want| want.iter().zip(&sectors).all(|(w, s)| &w[..] == *s));
        assert!(ok, "seed {seed}: {bytes:?}");
    }
}

#[test]
fn without_powersafe_overwrite_a_tear_garbles_its_whole_sector() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    // A write of bytes 2..10 (sectors 0..3 of 4 bytes) over a 12-byte file.
    std::fs::write(&path, b"xxNNNNNNNNyy").unwrap();
    let log = vec![write(1, &path, 2, b"OOOOOOOO", 8, 12)];
    let m = PowerLossModel {
        powersafe_overwrite: false,
        ..model(1.0, 1.0)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    simulate_power_loss(&log, u64::MAX, &m, &mut rng).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 12);
    // Exactly one sector is neither all new nor all old: the one where the write tore.
    let clean = |s: &[u8], new: &[u8], old: &[u8]| s == new || s == old;
    let sectors = [
        clean(&bytes[0..4], b"xxNN", b"xxOO"),
        clean(&bytes[4..8], b"NNNN", b"OOOO"),
        clean(&bytes[8..12], b"NNyy", b"OOyy"),
    ];
    assert_eq!(
        sectors.iter().filter(|c| !**c).count(),
        1,
        "{bytes:?} {sectors:?}"
    );
}

#[test]
fn a_lost_truncation_brings_the_tail_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db-journal");
    std::fs::write(&path, b"").unwrap();
    let log = vec![LogRecord {
        op: 1,
        pid: 1,
        file: FileKind::MainJournal,
        path: path.clone(),
        event: LogEvent::Truncate {
            new_size: 0,
            old_size: 6,
            cut_tail: b"HOTJRN".to_vec(),
        },
    }];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let r = simulate_power_loss(&log, u64::MAX, &model(0.0, 0.0), &mut rng).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"HOTJRN");
    assert_eq!(r.truncations_lost, 1);
}

fn delete(op: u64, path: &Path, sync_dir: bool, content: &[u8]) -> LogRecord {
    LogRecord {
        op,
        pid: 1,
        file: FileKind::MainJournal,
        path: path.to_path_buf(),
        event: LogEvent::Delete {
            sync_dir,
            content: Some(content.to_vec()),
        },
    }
}

fn create(op: u64, path: &Path) -> LogRecord {
    LogRecord {
        op,
        pid: 1,
        file: FileKind::MainJournal,
        path: path.to_path_buf(),
        event: LogEvent::Open { existed: false },
    }
}

#[test]
fn a_delete_without_a_directory_sync_can_be_undone_and_one_with_it_cannot() {
    for sync_dir in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db-journal");
        // Created, written, synced (which syncs the directory: the creation is durable), deleted.
        let mut log = vec![create(1, &path)];
        log.push(LogRecord {
            file: FileKind::MainJournal,
            ..write(2, &path, 0, b"", 4, 0)
        });
        log.push(sync(3, &path, FileKind::MainJournal, true));
        log.push(delete(4, &path, sync_dir, b"JRNL"));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let r = simulate_power_loss(&log, u64::MAX, &model(0.0, 0.0), &mut rng).unwrap();
        if sync_dir {
            assert!(!path.exists());
            assert!(r.files_resurrected.is_empty());
        } else {
            assert_eq!(std::fs::read(&path).unwrap(), b"JRNL");
            assert_eq!(r.files_resurrected, vec![path.clone()]);
        }
    }
}

#[test]
fn a_create_never_followed_by_a_directory_sync_can_be_undone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db-wal");
    std::fs::write(&path, b"WAL!").unwrap();
    let log = vec![
        LogRecord {
            file: FileKind::Wal,
            ..create(1, &path)
        },
        LogRecord {
            file: FileKind::Wal,
            ..write(2, &path, 0, b"", 4, 0)
        },
        // Synced data, but through a handle whose first sync already happened: no dir sync.
        sync(3, &path, FileKind::Wal, false),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let r = simulate_power_loss(&log, u64::MAX, &model(0.0, 0.0), &mut rng).unwrap();
    assert!(!path.exists());
    assert_eq!(r.files_removed, vec![path]);
}

#[test]
fn operations_after_the_crash_point_are_always_undone() {
    let dir = tempfile::tempdir().unwrap();
    let (path, log) = overlapping(dir.path());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Keep everything, but cut before op 4: the CCCC write and the append never happened.
    let r = simulate_power_loss(&log, 4, &model(1.0, 0.0), &mut rng).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"BBBB");
    assert_eq!(r.ops_after_cut, 2);
}

#[test]
fn a_lying_disk_makes_nothing_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (path, log) = overlapping(dir.path());
    let m = PowerLossModel {
        ignore_fsync: true,
        ..model(0.0, 0.0)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    simulate_power_loss(&log, u64::MAX, &m, &mut rng).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
}

/// Power cuts of a real SQLite writer: fork it, let it kill itself at op `n`, rewind its files,
/// and check them as the slot would. Everything is seeded, so every run is the same.
mod with_sqlite {
    use super::*;
    use crate::faults::config::{CrashAt, OpFilter};
    use crate::faults::log::read_log;
    use crate::faults::testkit::{self, killed, Check, Trial, Workload};

    struct Outcome {
        op: u64,
        acked: u64,
        check: Check,
        report: PowerLossReport,
    }

    impl Outcome {
        fn lost_acked(&self) -> bool {
            self.check.present < self.acked
        }
    }

    /// One power cut per crash point (about `points` of them spread over the workload).
    fn power_cuts(
        workload: &Workload<'_>,
        model: &PowerLossModel,
        points: u64,
    ) -> Vec<Outcome> {
        let dir = testkit::scratch_dir();
        let template = dir.path().join("template.db");
        testkit::make_db(&template, workload.journal_mode);
        let total = testkit::measure_ops(&template, workload);
        let step = (total / points).max(1) as usize;
        let mut outcomes = Vec::new();
        for op in (1..=total).step_by(step) {
            let trial = Trial::new(&template);
            let crash = CrashAt {
                op,
                filter: OpFilter::ANY,
            };
            assert!(killed(trial.run(workload, Some(crash))), "op {op}");
            let log = read_log(&trial.log).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(op);
            let report = simulate_power_loss(&log, op, model, &mut rng).unwrap();
            let acked = trial.acked();
            let check = testkit::check(&trial.db, acked);
            // TORTURE_SHOW_CUTS=1 prints every cut: the table behind the assertions.
            if std::env::var_os("TORTURE_SHOW_CUTS").is_some() {
                eprintln!(
                    "{} {}: op {op}/{total}: acked {acked} present {} {:?}; {}",
                    workload.journal_mode,
                    workload.synchronous,
                    check.present,
                    check.integrity,
                    report.detail()
                );
            }
            outcomes.push(Outcome {
                op,
                acked,
                check,
                report,
            });
        }
        outcomes
    }

    fn describe(o: &Outcome) -> String {
        format!(
            "op {}: acked {} present {} integrity {:?}; {}",
            o.op,
            o.acked,
            o.check.present,
            o.check.integrity,
            o.report.detail()
        )
    }

    fn workload<'a>(journal_mode: &'a str, synchronous: &'a str) -> Workload<'a> {
        Workload {
            journal_mode,
            synchronous,
            commits: 16,
            pad: 1500,
        }
    }

    #[test]
    fn wal_full_keeps_every_acknowledged_commit_through_a_power_cut() {
        let _serial = testkit::serial();
        for model in [
            PowerLossModel::default(),
            PowerLossModel {
                keep_probability: 0.0,
                ..PowerLossModel::default()
            },
        ] {
            let outcomes = power_cuts(&workload("wal", "full"), &model, 20);
            for o in &outcomes {
                assert!(o.check.intact() && !o.lost_acked(), "{}", describe(o));
            }
            // The simulator really rewound something.
            assert!(outcomes.iter().any(|o| o.report.writes_lost > 0));
        }
    }

    #[test]
    fn wal_normal_may_lose_recent_commits_but_never_corrupts() {
        let _serial = testkit::serial();
        let model = PowerLossModel {
            keep_probability: 0.0,
            ..PowerLossModel::default()
        };
        let outcomes = power_cuts(&workload("wal", "normal"), &model, 20);
        for o in &outcomes {
            assert!(o.check.intact(), "{}", describe(o));
        }
        assert!(
            outcomes.iter().any(Outcome::lost_acked),
            "WAL+NORMAL syncs only at checkpoints: some cut must lose acknowledged commits"
        );
    }

    #[test]
    fn delete_full_may_roll_back_the_last_commit_and_delete_extra_does_not() {
        let _serial = testkit::serial();
        let model = PowerLossModel {
            keep_probability: 0.0,
            ..PowerLossModel::default()
        };
        let full = power_cuts(&workload("delete", "full"), &model, 24);
        for o in &full {
            assert!(o.check.intact(), "{}", describe(o));
            assert!(o.check.present + 1 >= o.acked, "{}", describe(o));
        }
        assert!(
            full.iter()
                .any(|o| o.lost_acked() && !o.report.files_resurrected.is_empty()),
            "a journal deleted without a directory sync comes back and rolls back a commit"
        );
        for o in &power_cuts(&workload("delete", "extra"), &model, 24) {
            assert!(o.check.intact() && !o.lost_acked(), "{}", describe(o));
        }
    }

    #[test]
    fn synchronous_off_does_not_survive_a_power_cut() {
        let _serial = testkit::serial();
        // Losing everything unsynced: nothing was ever synced, so acknowledged commits vanish.
        let lose_all = PowerLossModel {
            keep_probability: 0.0,
            ..PowerLossModel::default()
        };
        let outcomes = power_cuts(&workload("delete", "off"), &lose_all, 8);
        assert!(outcomes.iter().any(Outcome::lost_acked));
        // Keeping an arbitrary part of it, in any order: the database itself breaks.
        let outcomes = power_cuts(&workload("delete", "off"), &PowerLossModel::default(), 30);
        assert!(
            outcomes.iter().any(|o| !o.check.intact()),
            "{}",
            outcomes.iter().map(describe).collect::<Vec<_>>().join("\n")
        );
    }
}
