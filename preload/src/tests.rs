//! Unit tests on synthetic logs: the format, the reader and the persistence model.

use std::path::PathBuf;

use crate::format::{Enc, Tag};
use crate::log::{parse_log, Coverage, OpKind};
use crate::model::{build_state, Cut, Model, Variant};
use crate::snapshot::{SnapFile, Snapshot};
use crate::{acks_before, enumerate, CrashPlan, Writer};

/// Builds a log the way the recorder does.
#[derive(Default)]
struct LogBuilder {
    bytes: Vec<u8>,
    seq: u64,
}

impl LogBuilder {
    fn rec(&mut self, tag: Tag, fill: impl FnOnce(&mut Enc)) -> &mut Self {
        self.seq += 1;
        let mut e = Enc::new(tag, self.seq, 10, 11, 0, false);
        fill(&mut e);
        self.bytes.extend_from_slice(e.finish());
        self
    }
    fn start(&mut self) -> &mut Self {
        self.rec(Tag::Start, |e| {
            e.u32(1).u64(0).u8(0).bytes(b"/bin/x");
        })
    }
    fn create(&mut self, path: &str, ino: u64) -> &mut Self {
        self.rec(Tag::Open, |e| {
            e.file(3, path.as_bytes(), ino)
                .i32(libc::O_CREAT | libc::O_RDWR)
                .u8(1)
                .u8(0)
                .u8(0)
                .u64(0)
                .bytes(&[]);
        })
    }
    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> &mut Self {
        self.rec(Tag::Write, |e| {
            e.file(3, b"f", ino)
                .u64(offset)
                .u64(0)
                .bytes(data)
                .bytes(&[]);
        })
    }
    fn fsync(&mut self, ino: u64) -> &mut Self {
        self.rec(Tag::Sync, |e| {
            e.file(3, b"f", ino).u8(0).u8(0);
        })
    }
    fn dirsync(&mut self) -> &mut Self {
        self.rec(Tag::Sync, |e| {
            e.file(4, b"", 1).u8(0).u8(1);
        })
    }
    fn ack(&mut self, text: &str) -> &mut Self {
        self.rec(Tag::Ack, |e| {
            e.i32(1).bytes(text.as_bytes());
        })
    }
}

fn start_with(path: &str, ino: u64, data: &[u8]) -> Snapshot {
    let mut s = Snapshot::default();
    s.files.insert(
        PathBuf::from(path),
        SnapFile {
            ino,
            data: data.to_vec(),
        },
    );
    s
}

fn state(start: &Snapshot, bytes: &[u8], after: u64, v: Variant, m: &Model) -> Vec<u8> {
    let log = parse_log(bytes).unwrap();
    let files = build_state(start, &log, Cut { after }, v, m).unwrap();
    files.get(&PathBuf::from("f")).cloned().unwrap_or_default()
}

fn model4() -> Model {
    Model {
        sector_size: 4,
        ..Model::default()
    }
}

#[test]
fn records_round_trip_and_a_torn_tail_is_dropped_and_counted() {
    let mut b = LogBuilder::default();
    b.start().write(7, 0, b"abcdefgh").fsync(7).ack("ack 1\n");
    let log = parse_log(&b.bytes).unwrap();
    assert_eq!(log.ops.len(), 4);
    assert_eq!(log.coverage(), Coverage::FileOps);
    assert!(
        matches!(&log.ops[1].kind, OpKind::Write { data, offset: 0, .. } if log.data(*data) == b"abcdefgh")
    );
    for cut in 1..12 {
        let torn = &b.bytes[..b.bytes.len() - cut];
        let log = parse_log(torn).unwrap();
        assert_eq!(log.ops.len(), 3, "cut {cut}");
        assert!(log.torn_tail_bytes > 0);
    }
    // Damage anywhere else is an error, not a silent drop.
    let mut bad = b.bytes.clone();
    bad[20] ^= 0xff;
    assert!(parse_log(&bad).is_err());
    assert_eq!(parse_log(&[]).unwrap().coverage(), Coverage::NoProcessSeen);
}

#[test]
fn unsynced_writes_are_kept_or_lost_and_synced_ones_stay() {
    let start = start_with("f", 7, b"00000000");
    let mut b = LogBuilder::default();
    b.write(7, 0, b"AAAA").fsync(7).write(7, 4, b"BBBB");
    let m = model4();
    assert_eq!(
        state(&start, &b.bytes, 3, Variant::KeepAll, &m),
        b"AAAABBBB"
    );
    assert_eq!(
        state(&start, &b.bytes, 3, Variant::LoseAll, &m),
        b"AAAA0000"
    );
    // Before the sync, the first write is pending too.
    assert_eq!(
        state(&start, &b.bytes, 1, Variant::LoseAll, &m),
        b"00000000"
    );
    // A lying disk never made anything durable.
    let lying = Model {
        lying_disk: true,
        ..model4()
    };
    assert_eq!(
        state(&start, &b.bytes, 3, Variant::LoseAll, &lying),
        b"00000000"
    );
}

#[test]
fn the_last_pending_write_tears_at_sector_granularity() {
    let start = start_with("f", 7, b"0000000000000000");
    let mut b = LogBuilder::default();
    b.write(7, 0, b"AAAABBBBCCCCDDDD");
    let m = model4();
    assert_eq!(
        state(&start, &b.bytes, 1, Variant::TearLast, &m),
        b"AAAABBBB00000000"
    );
    // Without powersafe overwrite, the sector where it tore is garbage.
    let no_psow = Model {
        powersafe_overwrite: false,
        ..model4()
    };
    let s = state(&start, &b.bytes, 1, Variant::TearLast, &no_psow);
    assert_eq!(&s[..8], b"AAAABBBB");
    assert_ne!(&s[8..12], b"0000");
    assert_eq!(&s[12..], b"0000");
}

#[test]
fn a_created_file_needs_a_directory_fsync() {
    let mut b = LogBuilder::default();
    b.create("f", 9).write(9, 0, b"data").fsync(9);
    let start = Snapshot::default();
    let m = model4();
    let log = parse_log(&b.bytes).unwrap();
    let lose = build_state(&start, &log, Cut { after: 3 }, Variant::LoseAll, &m).unwrap();
    assert!(lose.is_empty(), "the name was not durable: {lose:?}");
    b.dirsync();
    let log = parse_log(&b.bytes).unwrap();
    let lose = build_state(&start, &log, Cut { after: 4 }, Variant::LoseAll, &m).unwrap();
    assert_eq!(
        lose.get(&PathBuf::from("f")).map(Vec::as_slice),
        Some(&b"data"[..])
    );
}

#[test]
fn acks_count_only_before_the_cut_per_writer() {
    let mut b = LogBuilder::default();
    b.ack("ack 1 a\nack")
        .ack(" 2 a\n")
        .ack("journal_mode wal\n")
        .ack("ack 7\n");
    let log = parse_log(&b.bytes).unwrap();
    let all = acks_before(&log.ops, u64::MAX);
    assert_eq!(
        all.by_writer.get(&Writer::Id("a".into())),
        Some(&vec![1, 2])
    );
    assert_eq!(all.by_writer.get(&Writer::Pid(10)), Some(&vec![7]));
    assert_eq!(acks_before(&log.ops, 1).total(), 1);
}

#[test]
fn enumeration_dedupes_states_and_bad_models_are_refused() {
    let start = start_with("f", 7, b"00000000");
    let mut b = LogBuilder::default();
    b.write(7, 0, b"AAAA")
        .fsync(7)
        .ack("ack 1\n")
        .write(7, 4, b"BBBB")
        .fsync(7);
    let log = parse_log(&b.bytes).unwrap();
    let e = enumerate(&start, &log, &CrashPlan::every_op(model4())).unwrap();
    let states: Vec<_> = e.states().collect();
    let mut hashes: Vec<u64> = states.iter().map(|s| s.hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), states.len());
    assert_eq!(states.len(), e.distinct);
    // "AAAA0000" is reached both before and after the ack: the later cut (one ack) is kept.
    let mid = states
        .iter()
        .find(|s| s.files[&PathBuf::from("f")] == b"AAAA0000")
        .unwrap();
    assert_eq!(mid.acks.total(), 1);
    let bad = Model {
        sector_size: 1000,
        ..Model::default()
    };
    let err = enumerate(&start, &log, &CrashPlan::every_op(bad))
        .err()
        .unwrap();
    assert!(err.contains("power of two"), "{err}");
}

#[test]
fn acks_appended_from_outside_join_the_total_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut b = LogBuilder::default();
    b.start().write(7, 0, b"x");
    std::fs::write(&path, &b.bytes).unwrap();
    let mut a = crate::LogAppender::open(&path).unwrap();
    assert_eq!(a.append_ack(5, b"ack 1\n").unwrap(), 1);
    // The lock page was fresh: its sequence starts at 0, the log's end is the file's length.
    let log = crate::read_log(&path).unwrap();
    assert_eq!(log.ops.len(), 3);
    assert_eq!(acks_before(&log.ops, u64::MAX).total(), 1);
    // A torn record at the tail is cut off before the next append.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &[1, 2, 3]).unwrap();
    a.append_ack(5, b"ack 2\n").unwrap();
    let log = crate::read_log(&path).unwrap();
    assert_eq!(log.torn_tail_bytes, 0);
    assert_eq!(acks_before(&log.ops, u64::MAX).total(), 2);
}

#[test]
fn an_ack_the_recorder_saw_and_the_lab_read_counts_once_where_first_placed() {
    let mut b = LogBuilder::default();
    b.start();
    // Ack 1: written (seen by the recorder), then read by the lab: one ack, at the write.
    b.ack("ack 1\n");
    b.rec(Tag::Ack, |e| {
        e.i32(crate::LAB_READ_FD).bytes(b"ack 1\n");
    });
    // Ack 2: only the lab read it (C stdio): it counts from the lab's record on.
    b.write(7, 0, b"x");
    b.rec(Tag::Ack, |e| {
        e.i32(crate::LAB_READ_FD).bytes(b"ack 2\n");
    });
    let log = parse_log(&b.bytes).unwrap();
    let seq_of_lab_ack_2 = log.ops.last().unwrap().seq;
    let all = crate::parse_before(&log.ops, u64::MAX);
    assert_eq!(all.acks.total(), 2, "{:?}", all.acks);
    assert_eq!(all.lab_read_only, 1);
    // Before the lab read ack 2, only ack 1 counts: a late place, never an early one.
    let before = acks_before(&log.ops, seq_of_lab_ack_2 - 1);
    assert_eq!(before.all().map(|(_, n)| n).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn a_huge_file_is_refused_with_a_message_not_a_crash() {
    let mut b = LogBuilder::default();
    b.write(7, 1 << 40, b"x");
    let log = parse_log(&b.bytes).unwrap();
    let start = start_with("f", 7, b"");
    let err = build_state(&start, &log, Cut { after: 1 }, Variant::KeepAll, &model4()).unwrap_err();
    assert!(err.contains("smaller workload"), "{err}");
    assert!(enumerate(&start, &log, &CrashPlan::every_op(model4())).is_err());
}

#[test]
fn a_rename_is_pending_until_its_directory_is_fsynced() {
    // The atomic-replace pattern: write a temp file, fsync it, rename it over the target.
    let start = start_with("f", 7, b"old");
    let mut b = LogBuilder::default();
    b.create("f.tmp", 9).write(9, 0, b"new").fsync(9);
    b.rec(Tag::Rename, |e| {
        e.bytes(b"f.tmp")
            .u8(1)
            .bytes(b"f")
            .u8(1)
            .u64(9)
            .u64(7)
            .u32(0)
            .bytes(&[]);
    });
    let m = model4();
    let log = parse_log(&b.bytes).unwrap();
    let lose = build_state(&start, &log, Cut { after: 4 }, Variant::LoseAll, &m).unwrap();
    assert_eq!(
        lose.get(&PathBuf::from("f")).map(Vec::as_slice),
        Some(&b"old"[..])
    );
    assert!(!lose.contains_key(&PathBuf::from("f.tmp")));
    let keep = build_state(&start, &log, Cut { after: 4 }, Variant::KeepAll, &m).unwrap();
    assert_eq!(
        keep.get(&PathBuf::from("f")).map(Vec::as_slice),
        Some(&b"new"[..])
    );
    b.dirsync();
    let log = parse_log(&b.bytes).unwrap();
    let lose = build_state(&start, &log, Cut { after: 5 }, Variant::LoseAll, &m).unwrap();
    assert_eq!(
        lose.get(&PathBuf::from("f")).map(Vec::as_slice),
        Some(&b"new"[..])
    );
    // With a journaling file system's commit, the file's fsync made the earlier create durable,
    // but not the rename that came after it.
    let ext4 = Model {
        fsync_commits_names: true,
        ..model4()
    };
    let log = parse_log(&b.bytes[..]).unwrap();
    let s = build_state(&start, &log, Cut { after: 4 }, Variant::LoseAll, &ext4).unwrap();
    assert_eq!(
        s.get(&PathBuf::from("f.tmp")).map(Vec::as_slice),
        Some(&b"new"[..])
    );
    assert_eq!(
        s.get(&PathBuf::from("f")).map(Vec::as_slice),
        Some(&b"old"[..])
    );
}

#[test]
fn too_many_states_are_sampled_with_the_seed() {
    let start = start_with("f", 7, b"00000000");
    let mut b = LogBuilder::default();
    for i in 0..8u64 {
        b.write(7, i, b"A").fsync(7);
    }
    let log = parse_log(&b.bytes).unwrap();
    let plan = |seed| CrashPlan {
        max_states: Some(3),
        seed,
        ..CrashPlan::every_op(model4())
    };
    let e = enumerate(&start, &log, &plan(1)).unwrap();
    assert!(e.sampled && e.len() == 3 && e.distinct > 3);
    let cuts = |e: &crate::Enumeration<'_>| e.states().map(|s| s.cut.after).collect::<Vec<_>>();
    let again = enumerate(&start, &log, &plan(1)).unwrap();
    assert_eq!(cuts(&e), cuts(&again));
}

#[test]
fn two_writers_acknowledging_the_same_number_are_two_acks_each_read_once() {
    let mut b = LogBuilder::default();
    b.start();
    // Two processes print `ack 7`; the recorder sees both, the lab reads both.
    b.ack("ack 7\n");
    b.ack("ack 7\n");
    for _ in 0..2 {
        b.rec(Tag::Ack, |e| {
            e.i32(crate::LAB_READ_FD).bytes(b"ack 7\n");
        });
    }
    let log = parse_log(&b.bytes).unwrap();
    let p = crate::parse_before(&log.ops, u64::MAX);
    assert_eq!(p.acks.total(), 2, "{:?}", p.acks);
    assert_eq!(p.lab_read_only, 0);
}

#[test]
fn keyed_states_build_the_same_files_and_key_a_wal_by_what_recovery_reads() {
    // "f-wal" holds no valid WAL header, so recovery reads none of it: its key is its first 32
    // bytes (kept, so that no two different headers share a key). Writes past byte 32 change the
    // state, not its key; a write to the header or to "f" changes both.
    let mut start = start_with("f", 7, b"00000000");
    start.files.insert(
        PathBuf::from("f-wal"),
        crate::snapshot::SnapFile {
            ino: 8,
            data: vec![b'w'; 40],
        },
    );
    let mut b = LogBuilder::default();
    b.write(8, 36, b"tail")
        .write(7, 0, b"AAAA")
        .fsync(8)
        .write(8, 38, b"xy")
        .write(8, 0, b"head")
        .fsync(7)
        .write(7, 4, b"BBBB");
    let log = parse_log(&b.bytes).unwrap();
    let plan = CrashPlan {
        variants: vec![Variant::KeepAll, Variant::LoseAll, Variant::TearLast],
        random_per_cut: 3,
        seed: 5,
        ..CrashPlan::every_op(model4())
    };
    let e = enumerate(&start, &log, &plan).unwrap();
    let plain: Vec<_> = e.states().collect();
    let keyed: Vec<_> = e.states_keyed(|_| true).collect();
    let unbuilt: Vec<_> = e.states_keyed(|_| false).collect();
    assert_eq!(plain.len(), keyed.len());
    assert!(plain.len() > 4, "{}", plain.len());
    let seen = |s: &crate::CrashState| {
        let wal = s
            .files
            .get(&PathBuf::from("f-wal"))
            .cloned()
            .unwrap_or_default();
        (
            s.files.get(&PathBuf::from("f")).cloned(),
            wal[..wal.len().min(32)].to_vec(),
        )
    };
    // Each state's content hash is its files' (the hash skips building files with nothing
    // pending; the result is the same as hashing the built files).
    let mut by_hash = std::collections::HashMap::new();
    for p in &plain {
        assert!(by_hash
            .insert(p.hash, p.files.clone())
            .is_none_or(|f| f == p.files));
    }
    let mut by_files = std::collections::HashMap::new();
    for p in &plain {
        assert!(by_files
            .insert(p.files.clone(), p.hash)
            .is_none_or(|h| h == p.hash));
    }
    for ((p, k), u) in plain.iter().zip(&keyed).zip(&unbuilt) {
        assert!(k.built && !u.built && u.state.files.is_empty());
        assert_eq!(
            (p.cut, p.variant, p.hash),
            (k.state.cut, k.state.variant, k.state.hash)
        );
        assert_eq!(p.files, k.state.files, "{:?} {:?}", p.cut, p.variant);
        assert_eq!(k.effective, u.effective);
    }
    let mut same_key_other_bytes = 0;
    for (a, ka) in plain.iter().zip(&keyed) {
        for (b, kb) in plain.iter().zip(&keyed) {
            assert_eq!(seen(a) == seen(b), ka.effective == kb.effective);
            same_key_other_bytes += usize::from(ka.effective == kb.effective && a.hash != b.hash);
        }
    }
    // The positive control: some distinct states differ only past the WAL's header.
    assert!(same_key_other_bytes > 0);
}

#[test]
fn a_state_hash_is_the_hash_of_its_built_files_under_every_variant() {
    // The content hash skips building files with nothing pending: it must equal the hash of the
    // files `materialize` builds, as it was computed before.
    let mut start = start_with("f", 7, b"00000000");
    start.files.insert(
        PathBuf::from("g"),
        crate::snapshot::SnapFile {
            ino: 8,
            data: vec![b'g'; 40],
        },
    );
    let mut b = LogBuilder::default();
    b.write(8, 36, b"tail")
        .write(7, 0, b"AAAA")
        .fsync(8)
        .create("h", 9)
        .write(9, 0, b"new file")
        .write(8, 0, b"head")
        .fsync(7)
        .write(7, 4, b"BBBB");
    let log = parse_log(&b.bytes).unwrap();
    let model = model4();
    let built_hash = |files: &std::collections::BTreeMap<PathBuf, Vec<u8>>| {
        let mut h: u64 = 0x6A09_E667_F3BC_C908;
        for (path, data) in files {
            let p = crate::model::file_hash(path.as_os_str().as_encoded_bytes());
            h = (h ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
                ^ crate::model::file_hash(data);
        }
        h
    };
    let mut replay = crate::model::Replay::new(&start, &log, &model);
    let mut checked = 0;
    for cut in 0..=log.ops.last().unwrap().seq {
        replay.advance_to(cut);
        for v in [
            Variant::KeepAll,
            Variant::LoseAll,
            Variant::TearLast,
            Variant::Random { seed: 1 },
            Variant::Random { seed: 2 },
            Variant::Random { seed: 3 },
        ] {
            assert_eq!(
                replay.state_hash(v),
                built_hash(&replay.materialize(v)),
                "{cut} {v:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 30);
}
