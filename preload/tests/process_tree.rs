//! The recorder under process trees, without env vars, and with programs it cannot see.

mod common;

use std::process::Command;

use common::*;
use torture_preload::{Coverage, OpKind, Writer};

#[test]
fn inert_without_the_environment_variables() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    prepare(&dir, "wal");
    let only_dir = vec![("TORTURE_FAULTFS_DIR", dir.to_str().unwrap())];
    for (start, env) in [("1", vec![]), ("6", only_dir)] {
        let mut cmd = Command::new(python());
        cmd.arg(writer_script())
            .arg(dir.join("x.db"))
            .args(["--commits", "5", "--start", start])
            .env("LD_PRELOAD", library());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = if start == "1" { "ack 5\n" } else { "ack 10\n" };
        assert!(String::from_utf8_lossy(&out.stdout).ends_with(last));
        let stray: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "db")
            .collect();
        assert!(stray.is_empty(), "an inert recorder wrote {stray:?}");
    }
}

#[test]
fn acks_and_fds_survive_fork_and_exec() {
    let r = record_writer(
        "wal",
        &[
            "--commits",
            "8",
            "--synchronous",
            "full",
            "--exec-child",
            "--id",
            "w",
        ],
        &[],
    );
    let starts: Vec<_> = r
        .log
        .ops
        .iter()
        .filter_map(|o| match &o.kind {
            OpKind::Start { forked, .. } => Some((o.pid, *forked)),
            _ => None,
        })
        .collect();
    // The parent, the fork child (forked), and the same child again after exec.
    assert!(starts.len() >= 3, "{starts:?}");
    assert!(starts.iter().any(|s| s.1));
    let acks = torture_preload::acks_before(&r.log.ops, u64::MAX);
    assert_eq!(
        acks.by_writer.get(&Writer::Id("w".into())).map(Vec::len),
        Some(8),
        "{acks:?}"
    );
    assert_eq!(
        acks.by_writer.get(&Writer::Id("w-x".into())).map(Vec::len),
        Some(8),
        "{acks:?}"
    );
}

#[test]
fn a_descriptor_inherited_across_exec_is_relearned() {
    // The parent opens a folder file without O_CLOEXEC and execs a program that writes to the
    // inherited fd number: the write must be logged with the file's path.
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let script = format!(
        "import os, sys\n\
         fd = os.open({path:?}, os.O_RDWR | os.O_CREAT, 0o644)\n\
         os.set_inheritable(fd, True)\n\
         os.execv(sys.executable, [sys.executable, '-c', \
         'import os; os.write(%d, b\"hello\"); os.fsync(%d)' % (fd, fd)])\n",
        path = dir.join("f.bin").to_str().unwrap()
    );
    let mut cmd = Command::new(python());
    cmd.args(["-c", &script]);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let write = r
        .log
        .ops
        .iter()
        .find_map(|o| match &o.kind {
            OpKind::Write { path, data, .. } => Some((o.pid, path.clone(), r.log.data(*data))),
            _ => None,
        })
        .expect("the write after exec was not logged");
    assert_eq!(write.1, std::path::PathBuf::from("f.bin"));
    assert_eq!(write.2, b"hello");
    assert!(r
        .log
        .ops
        .iter()
        .any(|o| matches!(o.kind, OpKind::Sync { .. })));
}

#[test]
fn a_program_that_writes_nowhere_shows_no_file_operations() {
    let tmp = new_folder();
    let mut cmd = Command::new(python());
    cmd.args(["-c", "print('hello')"]);
    let r = record_cmd(tmp, cmd, &[]);
    assert_eq!(r.log.coverage(), Coverage::NoFileOps);
    assert!(r.log.processes() >= 1);
}

fn compile_c(dir: &std::path::Path, name: &str, statik: bool) -> std::path::PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(
        &src,
        "#include <fcntl.h>\n#include <unistd.h>\n\
         int main(int c, char **v) { int fd = open(v[1], O_CREAT | O_WRONLY, 0644);\n\
         if (fd < 0) return 1; if (write(fd, \"x\", 1) != 1) return 1; fsync(fd); return close(fd); }\n",
    )
    .unwrap();
    let exe = dir.join(name);
    let mut cmd = Command::new("cc");
    if statik {
        cmd.arg("-static");
    }
    let out = cmd
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!("a C compiler is needed: install it (apt-get install gcc libc6-dev): {e}")
        });
    assert!(
        out.status.success(),
        "cc{} failed: install gcc and libc6-dev (static libc): {}",
        if statik { " -static" } else { "" },
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn a_static_binary_shows_no_process_and_the_same_program_linked_dynamically_does() {
    let build = tempfile::tempdir().unwrap();
    for (statik, expected) in [(true, Coverage::NoProcessSeen), (false, Coverage::FileOps)] {
        let exe = compile_c(build.path(), if statik { "s" } else { "d" }, statik);
        let tmp = new_folder();
        let target = tmp.path().join("db/out.bin");
        let mut cmd = Command::new(exe);
        cmd.arg(&target);
        let r = record_cmd(tmp, cmd, &[]);
        assert!(r.output.status.success());
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        assert_eq!(r.log.coverage(), expected, "static: {statik}");
    }
}

#[test]
fn seeded_randomness_is_repeatable_per_seed() {
    let draw = |seed: Option<&str>| {
        let tmp = new_folder();
        let mut cmd = Command::new(python());
        cmd.args([
            "-c",
            "import os; print(os.urandom(16).hex(), open('/dev/urandom','rb').read(8).hex())",
        ]);
        let env: Vec<(&str, &str)> = seed
            .map(|s| vec![("TORTURE_FAULTFS_SEED", s)])
            .unwrap_or_default();
        let r = record_cmd(tmp, cmd, &env);
        assert!(
            r.output.status.success(),
            "{}",
            String::from_utf8_lossy(&r.output.stderr)
        );
        r.stdout()
    };
    assert_eq!(draw(Some("42")), draw(Some("42")));
    assert_ne!(draw(Some("42")), draw(Some("43")));
    assert_ne!(draw(None), draw(None));
}

#[test]
fn threads_share_the_total_order_and_the_rebuilt_folder_matches_the_disk() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let script = "import os, sys, threading\n\
        def w(i):\n\
        \x20   fd = os.open(os.path.join(sys.argv[1], 'f%d' % i), os.O_RDWR | os.O_CREAT, 0o644)\n\
        \x20   for k in range(300):\n\
        \x20       os.pwrite(fd, bytes([k % 256]) * 700, (k * 37 % 50) * 512)\n\
        \x20       if k % 50 == 0: os.fsync(fd)\n\
        \x20   os.close(fd)\n\
        ts = [threading.Thread(target=w, args=(i,)) for i in range(4)]\n\
        [t.start() for t in ts]\n\
        [t.join() for t in ts]\n";
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]).arg(&dir);
    let start = torture_preload::snapshot(&dir).unwrap();
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let writes = r
        .log
        .ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Write { .. }))
        .count();
    assert_eq!(writes, 1200);
    let tids: std::collections::BTreeSet<u32> = r.log.ops.iter().map(|o| o.tid).collect();
    assert!(tids.len() >= 4, "{tids:?}");
    let end = r.log.ops.last().unwrap().seq;
    let rebuilt = torture_preload::build_state(
        &start,
        &r.log,
        torture_preload::Cut { after: end },
        torture_preload::Variant::KeepAll,
        &torture_preload::Model::default(),
    )
    .unwrap();
    let disk: std::collections::BTreeMap<_, _> = torture_preload::snapshot(&r.dir())
        .unwrap()
        .files
        .into_iter()
        .map(|(p, f)| (p, f.data))
        .collect();
    assert_eq!(disk, rebuilt);
}

#[test]
fn a_shared_writable_mapping_of_a_data_file_is_reported() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let script = "import mmap, os, sys\n\
        for name in ('data', 'x.db-shm'):\n\
        \x20   fd = os.open(os.path.join(sys.argv[1], name), os.O_RDWR | os.O_CREAT, 0o644)\n\
        \x20   os.ftruncate(fd, 4096)\n\
        \x20   m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)\n\
        \x20   m[0:5] = b'hello'\n\
        \x20   m.flush()\n\
        \x20   m.close(); os.close(fd)\n";
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]).arg(&dir);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let marked: Vec<_> = r
        .log
        .mmap_writes()
        .map(|o| match &o.kind {
            OpKind::MmapWrite { path, .. } => path.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(marked, vec![std::path::PathBuf::from("data")]);
    // The flush of the mapping is seen as an msync (which the model treats as not durable).
    assert!(r.log.ops.iter().any(|o| matches!(
        &o.kind,
        OpKind::Sync {
            how: torture_preload::SyncHow::Msync,
            ..
        }
    )));
}

#[test]
fn copies_through_sendfile_are_recorded_with_their_bytes() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let src = tmp.path().join("src.bin");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &content).unwrap();
    let start = torture_preload::snapshot(&dir).unwrap();
    let mut cmd = Command::new(python());
    // shutil.copyfile copies with os.sendfile on Linux.
    cmd.args([
        "-c",
        "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])",
    ])
    .arg(&src)
    .arg(dir.join("copy.bin"));
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let end = r.log.ops.last().unwrap().seq;
    let rebuilt = torture_preload::build_state(
        &start,
        &r.log,
        torture_preload::Cut { after: end },
        torture_preload::Variant::KeepAll,
        &torture_preload::Model::default(),
    )
    .unwrap();
    assert_eq!(
        rebuilt.get(std::path::Path::new("copy.bin")),
        Some(&content)
    );
}

#[test]
fn a_stdio_stream_on_a_folder_file_is_reported_as_unrecorded() {
    let build = tempfile::tempdir().unwrap();
    let src = build.path().join("stdio.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\nint main(int c, char **v) { FILE *f = fopen(v[1], \"w\");\n\
         if (!f) return 1; fprintf(f, \"hello\\n\"); return fclose(f); }\n",
    )
    .unwrap();
    let exe = build.path().join("stdio");
    let out = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!("a C compiler is needed: install it (apt-get install gcc): {e}")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tmp = new_folder();
    let target = tmp.path().join("db/out.txt");
    let mut cmd = Command::new(exe);
    cmd.arg(&target);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(r.output.status.success());
    assert!(
        r.log.ops.iter().any(
            |o| matches!(&o.kind, OpKind::Unsupported { path, .. } if path.ends_with("out.txt"))
        ),
        "{:?}",
        r.log.ops
    );
}

#[test]
fn a_descriptor_inherited_across_fork_is_tracked_in_the_child() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let script = "import os, sys\n\
        fd = os.open(os.path.join(sys.argv[1], 'f'), os.O_RDWR | os.O_CREAT, 0o644)\n\
        pid = os.fork()\n\
        if pid == 0:\n\
        \x20   os.pwrite(fd, b'child', 0); os.fsync(fd); print('ack 1 child', flush=True); os._exit(0)\n\
        os.waitpid(pid, 0)\n\
        os.pwrite(fd, b'parent', 5); print('ack 1 parent', flush=True)\n";
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]).arg(&dir);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let writes: Vec<(u32, Vec<u8>)> = r
        .log
        .ops
        .iter()
        .filter_map(|o| match &o.kind {
            OpKind::Write { data, .. } => Some((o.pid, r.log.data(*data))),
            _ => None,
        })
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_ne!(writes[0].0, writes[1].0, "both writes from one pid");
    assert_eq!(writes[0].1, b"child");
    let acks = torture_preload::acks_before(&r.log.ops, u64::MAX);
    assert_eq!(acks.total(), 2, "{acks:?}");
    // The child's ack precedes the parent's write in the one order.
    let child_ack = r
        .log
        .ops
        .iter()
        .position(
            |o| matches!(&o.kind, OpKind::Ack { data, .. } if data.starts_with(b"ack 1 child")),
        )
        .unwrap();
    let parent_write = r
        .log
        .ops
        .iter()
        .position(
            |o| matches!(&o.kind, OpKind::Write { data, .. } if r.log.data(*data) == b"parent"),
        )
        .unwrap();
    assert!(child_ack < parent_write);
}

#[test]
fn a_bad_fault_setting_is_logged_not_ignored() {
    let tmp = new_folder();
    let mut cmd = Command::new(python());
    cmd.args(["-c", "print('ok')"]);
    let r = record_cmd(tmp, cmd, &[("TORTURE_FAULTFS_FAIL_AT", "fsync:3")]);
    assert!(r.output.status.success());
    let msgs: Vec<&str> = r.log.unsupported().collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("TORTURE_FAULTFS_FAIL_AT") && m.contains("give <kind>:<n>")),
        "{msgs:?}"
    );
    // The lab validates the same way before it starts a program.
    assert!("fsync:3".parse::<torture_preload::FailAt>().is_err());
}

#[test]
fn a_full_ack_pipe_read_by_a_recorded_process_does_not_deadlock() {
    // The child fills its stdout pipe with acks while the parent (also recorded, and the pipe's
    // only reader) writes folder files before it reads (after the pipe is full): the ack's real
    // write must not hold the lock.
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let script = "import os, subprocess, sys, time\n\
        p = subprocess.Popen([sys.executable, '-c', \"for i in range(30000): print('ack %d' % i, flush=True)\"], stdout=subprocess.PIPE)\n\
        time.sleep(1.5)\n\
        fd = os.open(os.path.join(sys.argv[1], 'f'), os.O_RDWR | os.O_CREAT, 0o644)\n\
        for k in range(3000): os.pwrite(fd, b'x' * 100, 0)\n\
        out = p.stdout.read(); p.wait()\n\
        print('read', len(out.splitlines()))\n";
    let log_path = tmp.path().join("log");
    let mut cmd = Command::new(python());
    cmd.args(["-c", script])
        .arg(&dir)
        .env("LD_PRELOAD", library())
        .env("TORTURE_FAULTFS_DIR", &dir)
        .env("TORTURE_FAULTFS_LOG", &log_path)
        .env("TORTURE_FAULTFS_ACKFD", "1")
        .stdout(std::process::Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: killing the process group we started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("deadlock: the recorded processes did not finish in 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "read 30000");
    let log = torture_preload::read_log(&log_path).unwrap();
    assert_eq!(
        torture_preload::acks_before(&log.ops, u64::MAX).total(),
        30000
    );
}

#[test]
fn a_write_on_an_o_dsync_fd_is_durable_when_it_returns() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    std::fs::write(dir.join("f"), b"0000").unwrap();
    let script = "import os, sys\n\
        fd = os.open(os.path.join(sys.argv[1], 'f'), os.O_RDWR | os.O_DSYNC)\n\
        os.pwrite(fd, b'AB', 0)\n\
        g = os.open(os.path.join(sys.argv[1], 'f'), os.O_RDWR)\n\
        os.pwrite(g, b'CD', 2)\n";
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]).arg(&dir);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let end = r.log.ops.last().unwrap().seq;
    let lose = torture_preload::build_state(
        &r.start,
        &r.log,
        torture_preload::Cut { after: end },
        torture_preload::Variant::LoseAll,
        &torture_preload::Model::default(),
    )
    .unwrap();
    // The O_DSYNC write survives losing everything pending; the plain one does not.
    assert_eq!(
        lose.get(std::path::Path::new("f")).map(Vec::as_slice),
        Some(&b"AB00"[..])
    );
}

#[test]
fn duplicated_descriptors_are_followed() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let script = "import fcntl, os, sys\n\
        fd = os.open(os.path.join(sys.argv[1], 'f'), os.O_RDWR | os.O_CREAT, 0o644)\n\
        d = os.dup(fd); os.close(fd)\n\
        os.pwrite(d, b'a', 0)\n\
        d2 = fcntl.fcntl(d, fcntl.F_DUPFD, 50); os.pwrite(d2, b'b', 1)\n\
        os.dup2(d, 60); os.pwrite(60, b'c', 2)\n\
        r, w = os.pipe(); os.dup2(w, 60); os.write(60, b'not a folder file')\n";
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]).arg(&dir);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let writes: Vec<Vec<u8>> = r
        .log
        .ops
        .iter()
        .filter_map(|o| match &o.kind {
            OpKind::Write { path, data, .. } if path.ends_with("f") => Some(r.log.data(*data)),
            _ => None,
        })
        .collect();
    assert_eq!(writes, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

#[test]
fn sync_makes_every_file_and_name_durable() {
    let tmp = new_folder();
    let dir = tmp.path().join("db");
    let script = "import os, sys\n\
        fd = os.open(os.path.join(sys.argv[1], 'new'), os.O_RDWR | os.O_CREAT, 0o644)\n\
        os.write(fd, b'kept')\n\
        os.sync()\n\
        os.write(fd, b'-lost')\n";
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]).arg(&dir);
    let r = record_cmd(tmp, cmd, &[]);
    assert!(
        r.output.status.success(),
        "{}",
        String::from_utf8_lossy(&r.output.stderr)
    );
    let end = r.log.ops.last().unwrap().seq;
    let lose = torture_preload::build_state(
        &r.start,
        &r.log,
        torture_preload::Cut { after: end },
        torture_preload::Variant::LoseAll,
        &torture_preload::Model::default(),
    )
    .unwrap();
    assert_eq!(
        lose.get(std::path::Path::new("new")).map(Vec::as_slice),
        Some(&b"kept"[..])
    );
}

/// `pwritev2(…, RWF_DSYNC)` makes that one write durable (Linux), as `O_DSYNC` does for every write
/// of a descriptor: the lose-all state after it keeps the bytes. A plain `pwritev` of the same
/// bytes is not durable: lose-all loses it (the control).
#[test]
fn a_write_with_rwf_dsync_is_durable_and_a_plain_one_is_not() {
    for (flag, durable) in [("os.RWF_DSYNC", true), ("0", false)] {
        let tmp = new_folder();
        let dir = tmp.path().join("db");
        std::fs::write(dir.join("f.bin"), b"").unwrap();
        let start = torture_preload::snapshot(&dir).unwrap();
        let mut cmd = Command::new(python());
        cmd.args([
            "-c",
            &format!(
                "import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\nos.pwritev(fd, [b'durable?'], 0, {flag})\nos.close(fd)"
            ),
        ])
        .arg(dir.join("f.bin"));
        let r = record_cmd(tmp, cmd, &[]);
        assert!(
            r.output.status.success(),
            "{}",
            String::from_utf8_lossy(&r.output.stderr)
        );
        let end = r.log.ops.last().unwrap().seq;
        let lost = torture_preload::build_state(
            &start,
            &r.log,
            torture_preload::Cut { after: end },
            torture_preload::Variant::LoseAll,
            &torture_preload::Model::default(),
        )
        .unwrap();
        let kept = lost.get(std::path::Path::new("f.bin")).cloned();
        assert_eq!(
            kept.as_deref() == Some(&b"durable?"[..]),
            durable,
            "{flag}: {kept:?}"
        );
    }
}
