#!/usr/bin/env python3
"""A small application that writes to SQLite with Python's standard sqlite3 module (or to libSQL with
the `libsql` package: --driver libsql, what libsql_writer.py runs), for `torture exec`.

It speaks the lab's acknowledgement protocol: after COMMIT of its transaction number N returned, it
prints `ack N` on stdout (flushed at once). It also prints `journal_mode X` and `synchronous X`, the
values PRAGMA read back, so the lab judges the trial against the mode really in force.

    torture exec --recovered-sql 'SELECT max(seq) FROM t' --verify-sql "$(cat workloads/exec/verify.sql)" \
        -- python3 workloads/exec/python_writer.py {db}

Each transaction N inserts a few `item` rows, one `t` row with seq = N, adds the row count to the
single `counter` row, and moves money between random rows of `account` (1000 of them, spread over
about 150 pages), so `verify.sql` can check that no transaction is half there: the counts agree and
the total balance never changes.

Options (all optional; --journal-mode, --synchronous and --key also from the environment as
TORTURE_JOURNAL_MODE, TORTURE_SYNCHRONOUS and TORTURE_KEY):
  --commits N          stop after N commits (default 2000)
  --rows LO..HI        item rows per transaction (default 1..8)
  --payload LO..HI     bytes per row (default 8..3000)
  --journal-mode M     PRAGMA journal_mode (default wal)
  --synchronous S      PRAGMA synchronous (default full)
  --transfers N        transfers between random accounts per transaction (default 2)
  --cache-size N       PRAGMA cache_size (default: SQLite's); a tiny cache makes SQLite write
                       pages of a transaction before its COMMIT
  --start-delay S      sleep S seconds before opening the database, like a server that boots first
  --lie                acknowledge commit N *before* making it: a buggy program, the lab's positive control
  --drop-every K       every K-th transaction is rolled back and acknowledged all the same (a program
                       that swallows a failed COMMIT): lost commits that are not the newest, the
                       positive control of a --recovered-sql that answers every surviving seq
  --forever            never stop by itself (a server): --commits is ignored
  --pace S             sleep S seconds after each commit (a slow program)
  --quiet              print only `ack N` (no journal_mode / synchronous / sqlite_version lines)
  --hang               after the last commit, open one more transaction, write a lot in it (with
                       --cache-size 8 it spills to the file) and wait forever without committing:
                       a server holding a long transaction; with --journal-mode off, any kill
                       from then on leaves half of it in the file

With several instances on one database (torture exec --instances N), instance I (TORTURE_INSTANCE)
numbers its commits from I * 1000000000 + 1, so every instance's seq is its own.
  --driver D           sqlite3 (default) or libsql (`pip install libsql`: Turso's fork, SQLite 3.45.1)
  --key K              libsql only: encrypt the database with K (libSQL's encryption_key)
"""

import os
import random
import sys
import time


def span(text):
    lo, _, hi = text.partition("..")
    return int(lo), int(hi or lo)


NAME = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python_writer.py"


def connect(db, driver, key):
    """The connection and the library version to report. isolation_level=None: the module sends no
    BEGIN of its own, so each COMMIT below is the commit."""
    if driver == "libsql":
        import libsql

        con = libsql.connect(db, isolation_level=None, timeout=30, encryption_key=key or None)
        return con, "libsql " + con.execute("SELECT sqlite_version()").fetchone()[0]
    if driver != "sqlite3":
        sys.exit(f"{NAME}: --driver {driver}: give sqlite3 or libsql")
    if key:
        sys.exit(f"{NAME}: --key needs --driver libsql (the sqlite3 module has no encryption)")
    import sqlite3

    return sqlite3.connect(db, isolation_level=None, timeout=30), sqlite3.sqlite_version


def main(argv):
    db = os.environ.get("TORTURE_DB")
    opts = {
        "commits": "2000",
        "rows": "1..8",
        "payload": "8..3000",
        "journal-mode": os.environ.get("TORTURE_JOURNAL_MODE", "wal"),
        "synchronous": os.environ.get("TORTURE_SYNCHRONOUS", "full"),
        "cache-size": None,
        "transfers": "2",
        "start-delay": "0",
        "driver": "sqlite3",
        "key": os.environ.get("TORTURE_KEY", ""),
    }
    lie = forever = quiet = hang = False
    drop_every = 0
    pace = 0.0
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--lie":
            lie = True
        elif a == "--forever":
            forever = True
        elif a == "--quiet":
            quiet = True
        elif a == "--hang":
            hang = True
        elif a == "--drop-every":
            drop_every = int(args.pop(0))
        elif a == "--pace":
            pace = float(args.pop(0))
        elif a.startswith("--") and a[2:] in opts:
            opts[a[2:]] = args.pop(0)
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"{NAME}: unknown option {a}")
    if not db:
        sys.exit(f"{NAME}: give the database path (argument or TORTURE_DB)")
    commits = int(opts["commits"])
    transfers = int(opts["transfers"])
    rows = span(opts["rows"])
    payload = span(opts["payload"])
    rng = random.Random(os.environ.get("TORTURE_SEED", "0"))

    time.sleep(float(opts["start-delay"]))
    con, version = connect(db, opts["driver"], opts["key"])
    # Several instances opening a new database at once: the switch to WAL can answer "database is
    # locked" at once, without the busy timeout (seed 003's concurrent WAL initialisation): retry.
    deadline = time.monotonic() + 30
    while True:
        try:
            mode = con.execute(f"PRAGMA journal_mode={opts['journal-mode']}").fetchone()[0]
            break
        except Exception as e:  # sqlite3.OperationalError, libsql's ValueError
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    con.execute(f"PRAGMA synchronous={opts['synchronous']}")
    sync = con.execute("PRAGMA synchronous").fetchone()[0]
    if opts["cache-size"] is not None:
        con.execute(f"PRAGMA cache_size={int(opts['cache-size'])}")
    if not quiet:
        print(f"sqlite_version {version}", flush=True)
        print(f"journal_mode {mode}", flush=True)
        print(f"synchronous {['off', 'normal', 'full', 'extra'][sync]}", flush=True)
    # BEGIN IMMEDIATE: with several instances, a deferred transaction that read first could not
    # take the write lock later (SQLITE_BUSY without waiting).
    con.executescript(
        """
        BEGIN IMMEDIATE;
        CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS item(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB);
        CREATE INDEX IF NOT EXISTS item_seq ON item(seq);
        CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY CHECK (id = 0), items INTEGER NOT NULL);
        INSERT OR IGNORE INTO counter VALUES (0, 0);
        CREATE TABLE IF NOT EXISTS account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB);
        INSERT OR IGNORE INTO account
            WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < 1000)
            SELECT i, 100, zeroblob(400) FROM a;
        COMMIT;
        """
    )
    # A database the lab seeded (--seed-db) already holds commits: carry on after them.
    base = int(os.environ.get("TORTURE_INSTANCE") or 0) * 1_000_000_000
    start = con.execute(
        "SELECT coalesce(max(seq), ?) FROM t WHERE seq BETWEEN ? AND ?",
        (base, base, base + 999_999_999),
    ).fetchone()[0] + 1
    seq = start - 1
    while forever or seq < start + commits - 1:
        seq += 1
        n = rng.randint(*rows)
        if lie:
            print(f"ack {seq}", flush=True)
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT INTO item(seq, payload) VALUES (?, ?)",
            [(seq, rng.randbytes(rng.randint(*payload))) for _ in range(n)],
        )
        con.execute("INSERT INTO t(seq, rows) VALUES (?, ?)", (seq, n))
        con.execute("UPDATE counter SET items = items + ? WHERE id = 0", (n,))
        for _ in range(transfers):
            src, dst, amount = rng.randint(1, 1000), rng.randint(1, 1000), rng.randint(1, 50)
            con.execute("UPDATE account SET balance = balance - ? WHERE id = ?", (amount, src))
            con.execute("UPDATE account SET balance = balance + ? WHERE id = ?", (amount, dst))
        con.execute("ROLLBACK" if drop_every and seq % drop_every == 0 else "COMMIT")
        if not lie:
            print(f"ack {seq}", flush=True)
        if pace:
            time.sleep(pace)
    if hang:
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT INTO item(seq, payload) VALUES (?, ?)",
            [(seq, rng.randbytes(2000)) for _ in range(300)],
        )
        for _ in range(300):
            src, dst = rng.randint(1, 1000), rng.randint(1, 1000)
            con.execute("UPDATE account SET balance = balance - 7 WHERE id = ?", (src,))
            con.execute("UPDATE account SET balance = balance + 7 WHERE id = ?", (dst,))
        while True:
            time.sleep(3600)
    con.close()


if __name__ == "__main__":
    main(sys.argv[1:])
