//! Tests of `child.rs`: the ack protocol, `{db}`, kill times, and killing and reaping real process groups.

use super::*;
use nix::sys::signal::killpg;

#[test]
fn acks_are_the_highest_n_of_complete_lines_only() {
    let mut p = LineParser::default();
    let t = Duration::from_millis(1);
    p.feed(b"starting up\nack 1\nack 3\r\nack", t);
    p.feed(b" 2\nack two\nack 4 5\njournal_mode WAL\nack 12", t * 2);
    assert_eq!(
        p.said.max_ack, 4,
        "`ack 4 5` is ack 4 by writer 5; `ack 12` is not finished while the program lives"
    );
    assert_eq!(p.said.ack_lines, 4);
    assert_eq!(p.said.unread_lines, 1, "`ack two`");
    assert_eq!(p.said.first_ack, Some(t));
    assert_eq!(p.said.last_ack, Some(t * 2));
    assert_eq!(p.said.journal_mode.as_deref(), Some("wal"));
    p.finish(t * 3);
    assert_eq!(
        p.said.max_ack, 12,
        "killed between `ack 12` and its newline"
    );
    let mut p = LineParser::default();
    p.feed(&vec![b'x'; MAX_LINE * 3], t);
    p.feed(b"ack 99\nack 7\n", t);
    assert_eq!(
        p.said.max_ack, 7,
        "the end of an overlong line is not a protocol line"
    );
}

#[test]
fn db_is_substituted_in_every_argument_and_shell_mode_joins_them() {
    let db = Path::new("/w/slot-0/exec-3/db/trial.db");
    let cmd: Vec<String> = ["./app", "--db={db}", "{db}", "x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        argv(&cmd, false, db),
        [
            "./app",
            "--db=/w/slot-0/exec-3/db/trial.db",
            "/w/slot-0/exec-3/db/trial.db",
            "x"
        ]
    );
    let sh = argv(&["app {db} | tee log".to_string()], true, db);
    assert_eq!(
        sh,
        [
            "/bin/sh",
            "-c",
            "app /w/slot-0/exec-3/db/trial.db | tee log"
        ]
    );
    // A path with shell syntax in it never enters the script: the shell expands TORTURE_DB, in
    // the quoting in force where `{db}` stands.
    let odd = Path::new("/w/a$(touch x)'b/trial.db");
    let sh = argv(&[r#"app {db} "{db}" '{db}' \'{db}"#.to_string()], true, odd);
    assert_eq!(
        sh[2],
        r#"app "${TORTURE_DB}" "${TORTURE_DB}" ''"${TORTURE_DB}"'' \'"${TORTURE_DB}""#
    );
}

fn kt(stop: Stop, first_ack: Option<Duration>) -> Duration {
    let said = Said {
        first_ack,
        ..Said::default()
    };
    kill_time(stop, &said, None)
}

#[test]
fn anchored_kills_follow_the_programs_own_first_ack() {
    let ms = Duration::from_millis;
    let stop = Stop::Anchored {
        at: ms(700),
        anchor: ms(500),
    };
    assert_eq!(kt(stop, Some(ms(900))), ms(1100), "a slow start");
    assert_eq!(kt(stop, Some(ms(300))), ms(500), "a fast start");
    assert_eq!(
        kt(stop, None),
        ms(2200),
        "no ack yet: wait three more start-ups"
    );
    let early = Stop::Anchored {
        at: ms(450),
        anchor: ms(500),
    };
    assert_eq!(kt(early, Some(ms(100))), ms(450), "the lead-in is a time");
}

fn launch<'a>(cmd: &'a [String], db: &'a Path, err: &'a Path) -> Launch<'a> {
    Launch {
        command: cmd,
        shell: false,
        db,
        seed: 42,
        trial: "7".into(),
        stderr: err,
        close_fds: &[],
        key: None,
        instances: 1,
        kill_one: None,
        ack_log: None,
    }
}

#[test]
fn the_program_gets_the_path_as_db_and_as_torture_db() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    let err = d.path().join("stderr.txt");
    let cmd: Vec<String> = [
        "/bin/sh",
        "-c",
        r#"printf '%s\n%s\n%s\n%s\n' "$1" "$2" "$TORTURE_DB" "$TORTURE_SEED" > "$TORTURE_DB.seen"; echo ack 1; echo oops >&2"#,
        "sh",
        "{db}",
        "--db={db}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = run(
        &launch(&cmd, &db, &err),
        Stop::Calibrate {
            timeout: Duration::from_secs(10),
            run_for: None,
            acks_expected: false,
            min_run: Duration::ZERO,
        },
        None,
    )
    .unwrap();
    assert_eq!(run.end, End::Exited(0));
    assert_eq!(run.said.max_ack, 1);
    let seen = std::fs::read_to_string(d.path().join("trial.db.seen")).unwrap();
    let p = db.display();
    assert_eq!(seen, format!("{p}\n--db={p}\n{p}\n42\n"));
    assert_eq!(std::fs::read_to_string(&err).unwrap(), "oops\n");
}

#[test]
fn the_whole_group_dies_at_the_kill_time_and_acks_in_the_pipe_count() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    let err = d.path().join("stderr.txt");
    // A child of the program in the same group keeps writing acks; it must die too.
    let cmd: Vec<String> = [
        "/bin/sh",
        "-c",
        "(i=0; while true; do i=$((i+1)); echo ack $i; sleep 0.005; done) & echo $! > \"$TORTURE_DB.pid\"; wait",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let t0 = Instant::now();
    // Half a second: a loaded machine still runs the loop a few times.
    let run = run(
        &launch(&cmd, &db, &err),
        Stop::At(Duration::from_millis(500)),
        None,
    )
    .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(run.end, End::Killed);
    assert!(run.said.max_ack >= 3, "{:?}", run.said);
    let pid: i32 = std::fs::read_to_string(d.path().join("trial.db.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild was in the group: it is gone, reaped by the lab (its subreaper) before
    // `run` returned — not a zombie left for init, not still dying.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(state.is_empty(), "grandchild {pid} still there: {state}");
}

/// Item 3 of issue 11: in a `--shell` pipeline the writer is a grandchild; the lab used to wait
/// for the leader only, so the check could open the files while the sqlite3 shell still held
/// them. When `run` returns, no process of the group may be left, not even a zombie.
#[test]
fn no_process_of_a_pipeline_is_left_when_the_run_returns() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    let err = d.path().join("stderr.txt");
    for round in 0..10 {
        let cmd: Vec<String> = [
            "/bin/sh",
            "-c",
            r#"echo $$ > "$TORTURE_DB.pgid"; (i=0; while :; do i=$((i+1)); echo ack $i; done) | cat | cat"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = run(
            &launch(&cmd, &db, &err),
            Stop::At(Duration::from_millis(300)),
            None,
        )
        .unwrap();
        assert_eq!(run.end, End::Killed);
        let pgid: i32 = std::fs::read_to_string(d.path().join("trial.db.pgid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let left = killpg(Pid::from_raw(pgid), None);
        assert_eq!(
            left,
            Err(nix::errno::Errno::ESRCH),
            "round {round}: a process of group {pgid} is still there"
        );
        assert!(run.lingering.is_none());
    }
}

#[test]
fn a_program_that_cannot_start_is_an_error_not_a_hang() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("trial.db");
    let err = d.path().join("stderr.txt");
    let cmd = vec!["/nonexistent/program".to_string()];
    let e = run(
        &launch(&cmd, &db, &err),
        Stop::At(Duration::from_millis(10)),
        None,
    )
    .unwrap_err();
    assert!(e.contains("cannot start"), "{e}");
}

#[test]
fn garbled_ack_lines_are_read_where_they_can_be_and_never_dropped_silently() {
    assert_eq!(scan_acks("ack 218ack 1775"), vec![218, 1775]);
    assert_eq!(scan_acks("xack 3 and ack\t4"), vec![3, 4]);
    assert!(scan_acks("ack nothing").is_empty());
    assert!(scan_acks("ack").is_empty());
    let mut p = LineParser::default();
    p.feed(
        b"ack 1\nack 218ack 1775\nack oops\nack 2 w1\njournal_mode wal\nhello world\n",
        Duration::ZERO,
    );
    // `ack 1`, the two run together, and `ack 2 w1` (an id after the number).
    assert_eq!(p.said.acks, vec![1, 218, 1775, 2]);
    assert_eq!((p.said.garbled_lines, p.said.unread_lines), (1, 1));
    assert_eq!(p.said.journal_mode.as_deref(), Some("wal"));
    let note = p.said.garbled_note().expect("a note");
    assert!(
        note.contains("1 garbled") && note.contains("1 unreadable"),
        "{note}"
    );
    let mut clean = LineParser::default();
    clean.feed(b"ack 1\nack 2\nsome log line\n", Duration::ZERO);
    assert_eq!(clean.said.garbled_note(), None);
}
