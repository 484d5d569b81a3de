#!/usr/bin/env python3
"""A small application on Turso (the `pyturso` package from PyPI), for `torture exec`, that can open
the database in Turso's default mode or in its experimental multi-process WAL mode.

It prints `ack N` on stdout once COMMIT of its transaction number N returned. Each transaction N
inserts a few `item` rows (seq = N) and one `t` row with seq = N, so `SELECT seq FROM t` answers
every surviving commit and `torture exec --recovered-sql` checks each acknowledged one. With
several instances on one database (`--instances N`), instance I numbers its commits from
I * 1000000000 + 1.

    python3 -m venv /tmp/turso && /tmp/turso/bin/pip install pyturso==0.8.3
    PATH=/tmp/turso/bin:$PATH torture exec --instances 2 --recovered-sql 'SELECT seq FROM t' \\
        -- python3 workloads/exec/turso_writer.py {db} --multiprocess-wal 1

Options (all optional):
  --commits N              stop after N commits (default 2000)
  --rows LO..HI            item rows per transaction (default 1..8)
  --payload LO..HI         bytes per row (default 8..3000)
  --transfers N            also move money between N pairs of the 1000 `account` rows (400-byte
                           rows over ~100 pages) per transaction: updates in place (default 0)
  --multiprocess-wal WHO   which instances open with experimental_features="multiprocess_wal":
                           `all`, `none` (default: Turso's default mode, one process at a time) or
                           an instance number (that one; the others in the default mode)
  --open-timeout S         retry a refused open for S seconds (default 10), then fail: an open the
                           engine refuses is the engine keeping two modes apart, not a crash

A Turso database is an SQLite file: the lab checks it with SQLite (integrity_check, the acks);
`turso_check.py` checks it with Turso itself (`--verify-cmd`).
"""

import os
import random
import sys
import time

import turso

NAME = "turso_writer.py"


def span(text):
    lo, _, hi = text.partition("..")
    return int(lo), int(hi or lo)


def features_for(who, instance):
    if who == "all" or who == instance:
        return "multiprocess_wal"
    if who == "none" or who.isdigit():
        return None
    sys.exit(f"{NAME}: --multiprocess-wal {who}: give all, none or an instance number")


def connect(db, features, timeout):
    """Open, retrying while another process holds the database (the default mode is exclusive)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return turso.connect(db, isolation_level=None, experimental_features=features)
        except Exception as e:  # pyturso raises its own classes; the message says what it was
            if time.monotonic() > deadline:
                raise
            print(f"{NAME}: open refused, retrying: {e}", file=sys.stderr, flush=True)
            time.sleep(0.05)


def begin(con):
    """BEGIN IMMEDIATE, retried while another process writes (busy_timeout covers most of it)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            con.execute("BEGIN IMMEDIATE")
            return
        except Exception as e:
            text = str(e).lower()
            if ("busy" not in text and "lock" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def main(argv):
    db = os.environ.get("TORTURE_DB")
    opts = {"commits": "2000", "rows": "1..8", "payload": "8..3000", "multiprocess-wal": "none",
            "open-timeout": "10", "transfers": "0"}
    args = list(argv)
    while args:
        a = args.pop(0)
        if a.startswith("--") and a[2:] in opts and args:
            opts[a[2:]] = args.pop(0)
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"{NAME}: unknown option {a}")
    if not db:
        sys.exit(f"{NAME}: give the database path (argument or TORTURE_DB)")
    instance = os.environ.get("TORTURE_INSTANCE", "0")
    features = features_for(opts["multiprocess-wal"], instance)
    rng = random.Random(os.environ.get("TORTURE_SEED", "0") + instance)
    rows, payload = span(opts["rows"]), span(opts["payload"])

    con = connect(db, features, float(opts["open-timeout"]))
    con.execute("PRAGMA busy_timeout = 30000")
    print(f"opened with experimental_features={features}", file=sys.stderr, flush=True)
    print(f"sqlite_version turso {turso.sqlite_version}", flush=True)
    print(f"journal_mode {con.execute('PRAGMA journal_mode').fetchone()[0]}", flush=True)
    print(f"synchronous {['off', 'normal', 'full', 'extra'][con.execute('PRAGMA synchronous').fetchone()[0]]}",
          flush=True)
    begin(con)
    con.execute("CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL)")
    con.execute("CREATE TABLE IF NOT EXISTS item(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB)")
    con.execute("CREATE INDEX IF NOT EXISTS item_seq ON item(seq)")
    con.execute("CREATE TABLE IF NOT EXISTS account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB)")
    if con.execute("SELECT count(*) FROM account").fetchone()[0] == 0:
        for i in range(1, 1001):
            con.execute("INSERT INTO account VALUES (?, 100, zeroblob(400))", (i,))
    con.execute("COMMIT")
    transfers = int(opts["transfers"])

    base = int(instance) * 1_000_000_000
    for seq in range(base + 1, base + int(opts["commits"]) + 1):
        n = rng.randint(*rows)
        begin(con)
        for _ in range(n):
            con.execute("INSERT INTO item(seq, payload) VALUES (?, ?)", (seq, rng.randbytes(rng.randint(*payload))))
        con.execute("INSERT INTO t(seq, rows) VALUES (?, ?)", (seq, n))
        for _ in range(transfers):
            src, dst, amount = rng.randint(1, 1000), rng.randint(1, 1000), rng.randint(1, 50)
            con.execute("UPDATE account SET balance = balance - ? WHERE id = ?", (amount, src))
            con.execute("UPDATE account SET balance = balance + ? WHERE id = ?", (amount, dst))
        con.execute("COMMIT")
        print(f"ack {seq}", flush=True)
    con.close()


if __name__ == "__main__":
    main(sys.argv[1:])
