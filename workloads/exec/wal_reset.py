#!/usr/bin/env python3
"""SQLite's WAL-reset race (sqlite.org wal.html#walresetbug; SQLite 3.7.0-3.51.2, fixed in 3.51.3) as an
application: writer processes commit small transactions (now and then a large one) with idle gaps of
0-400 us between commits, while another process runs PASSIVE checkpoints back to back, in WAL mode.
The exec-mode twin of the built-in `wal-reset` scenario, for libraries the lab does not link: Python's
sqlite3 (whatever libsqlite3.so.0 it loads: `torture exec --sqlite 3.51.2` swaps it) or libSQL.

    torture exec --sqlite 3.51.2 --kill-after 15s..30s --trial-timeout 60s \\
        --recovered-sql 'SELECT max(seq) FROM t' -- python3 workloads/exec/wal_reset.py {db}
    torture exec --engine libsql --engine-version 0.1.11 --kill-after 15s..30s --trial-timeout 60s \\
        --recovered-sql 'SELECT max(seq) FROM t' -- python3 workloads/exec/wal_reset.py {db} --driver libsql

Each writer's transaction N inserts 1-8 `item` rows (64 one time in fifty) and a `t` row with a
unique, growing seq, and prints `ack seq` after COMMIT returned. A process that meets an error
other than BUSY (SQLITE_CORRUPT: the race happened) reports it on stderr and stops writing; the
program then ends by itself 2 s later (exit 0), so the lab checks the database soon. The error is
also written to DB.app-saw-error: `--verify-cmd 'test ! -e {db}.app-saw-error || { cat
{db}.app-saw-error; exit 1; }'` counts a trial whose application was told "database disk image is
malformed" even when the file recovered intact after the kill. Give the kill window
with --kill-after: on an affected SQLite an uninterrupted run may already be damaged, which a
calibration run would refuse.

Every connection runs synchronous=NORMAL and only the checkpointer checkpoints (wal_autocheckpoint=0),
as in the scenario: with Python's default synchronous=FULL, an fsync per commit, it did not show in
minutes.

Options: --driver sqlite3|libsql (default sqlite3), --writers N (default 2), --gap-us N (default
400; 0: back to back), --seconds S (stop after S seconds, default 40).
"""

import os
import random
import signal
import sys
import time

NAME = "wal_reset.py"


def connect(db, driver):
    """A connection with the scenario's per-connection settings (synchronous=NORMAL, only the
    checkpointer checkpoints), and the library's version."""
    if driver == "libsql":
        import libsql

        con = libsql.connect(db, isolation_level=None, timeout=30)
        version = "libsql " + con.execute("SELECT sqlite_version()").fetchone()[0]
    elif driver == "sqlite3":
        import sqlite3

        con, version = sqlite3.connect(db, isolation_level=None, timeout=30), sqlite3.sqlite_version
    else:
        sys.exit(f"{NAME}: --driver {driver}: give sqlite3 or libsql")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    return con, version


def report(db, line):
    """An error the application was told: on stderr, and in DB.app-saw-error for --verify-cmd."""
    os.write(2, (line + "\n").encode())
    with open(db + ".app-saw-error", "a") as f:
        f.write(line + "\n")


def writer(db, driver, w, writers, gap_us, seed):
    con, _ = connect(db, driver)
    rng = random.Random(f"{seed}-{w}")
    k = 0
    while True:
        seq = k * writers + w + 2
        rows = 64 if rng.randrange(50) == 0 else rng.randint(1, 8)
        try:
            con.execute("BEGIN IMMEDIATE")
            for i in range(rows):
                con.execute(
                    "INSERT INTO item(seq, n, payload) VALUES (?, ?, ?)",
                    (seq, i, os.urandom(rng.choice((16, 100, 1000)))),
                )
            con.execute("INSERT INTO t(seq, w, rows) VALUES (?, ?, ?)", (seq, w, rows))
            con.execute("COMMIT")
        except Exception as e:  # noqa: BLE001 - any failure is reported, BUSY retried
            try:
                con.execute("ROLLBACK")
            except Exception:  # noqa: BLE001
                pass
            if "locked" in str(e) or "busy" in str(e):
                continue
            report(db, f"writer {w}: {type(e).__name__}: {e}")
            return 1
        os.write(1, f"ack {seq}\n".encode())
        k += 1
        if gap_us:
            time.sleep(rng.randint(0, gap_us) / 1e6)


def checkpointer(db, driver):
    con, _ = connect(db, driver)
    while True:
        try:
            con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as e:  # noqa: BLE001
            if "locked" in str(e) or "busy" in str(e):
                continue
            report(db, f"checkpointer: {type(e).__name__}: {e}")
            return 1


def main(argv):
    db = os.environ.get("TORTURE_DB")
    driver, writers, gap_us, seconds = "sqlite3", 2, 400, 40.0
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--driver":
            driver = args.pop(0)
        elif a == "--writers":
            writers = int(args.pop(0))
        elif a == "--gap-us":
            gap_us = int(args.pop(0))
        elif a == "--seconds":
            seconds = float(args.pop(0))
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"{NAME}: unknown option {a}")
    if not db:
        sys.exit(f"{NAME}: give the database path (argument or TORTURE_DB)")
    seed = os.environ.get("TORTURE_SEED", "0")

    con, version = connect(db, driver)
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    con.execute("CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, w INTEGER, rows INTEGER)")
    con.execute("CREATE TABLE IF NOT EXISTS item(seq INTEGER, n INTEGER, payload BLOB)")
    con.execute("INSERT OR IGNORE INTO t VALUES (1, -1, 0)")
    sync = {0: "off", 1: "normal", 2: "full", 3: "extra"}[
        con.execute("PRAGMA synchronous").fetchone()[0]
    ]
    con.close()
    print(f"journal_mode {mode}\nsynchronous {sync}\nsqlite_version {version}", flush=True)
    print("ack 1", flush=True)

    stop = []
    signal.signal(signal.SIGUSR1, lambda *_: stop.append(1))
    children = []
    for w in range(writers + 1):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if w < writers:
                    code = writer(db, driver, w, writers, gap_us, seed)
                else:
                    code = checkpointer(db, driver)
            finally:
                # A process that stopped on an error tells the parent, which ends the run.
                if code:
                    os.kill(os.getppid(), signal.SIGUSR1)
                    while True:
                        time.sleep(3600)
                os._exit(0)
        children.append(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop:
        time.sleep(0.05)
    if stop:
        # What the process saw may still be only in the WAL index, which recovery rebuilds: let the
        # others go on for a moment, so a checkpoint acts on it, as the built-in scenario does.
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
