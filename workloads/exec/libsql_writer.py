#!/usr/bin/env python3
"""A small application that writes to libSQL (Turso's SQLite fork) through the `libsql` package from
PyPI, optionally encrypted, for `torture exec --engine libsql` — the way the postmortem's app
("EncryptedLibSQLConnection") reached its database.

It is python_writer.py on `import libsql` instead of `import sqlite3`: the same schema, the same
transactions, the same `ack N` after COMMIT returned, so the same `--recovered-sql` and
`verify.sql` check it. It prints `sqlite_version`, `journal_mode` and `synchronous` as read back.

    pip install libsql
    torture exec --engine libsql --recovered-sql 'SELECT max(seq) FROM t' \
        --verify-sql "$(cat workloads/exec/verify.sql)" -- python3 workloads/exec/libsql_writer.py {db}
    # encrypted: the lab passes --key to the program as TORTURE_KEY and checks with it
    torture exec --engine libsql --key s3cret ... -- python3 workloads/exec/libsql_writer.py {db}

Options (all optional; --journal-mode, --synchronous and --key also from the environment as
TORTURE_JOURNAL_MODE, TORTURE_SYNCHRONOUS and TORTURE_KEY):
  --commits N          stop after N commits (default 2000)
  --rows LO..HI        item rows per transaction (default 1..8)
  --payload LO..HI     bytes per row (default 8..3000)
  --journal-mode M     PRAGMA journal_mode (default wal)
  --synchronous S      PRAGMA synchronous (default full)
  --transfers N        transfers between random accounts per transaction (default 2)
  --cache-size N       PRAGMA cache_size (default: libSQL's); a tiny cache writes pages of a
                       transaction before its COMMIT
  --key K              encrypt the database with K (libSQL's encryption_key; empty: plaintext)
  --lie                acknowledge commit N *before* making it: a buggy program, a positive control
"""

import os
import random
import sys

import libsql


def span(text):
    lo, _, hi = text.partition("..")
    return int(lo), int(hi or lo)


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
        "key": os.environ.get("TORTURE_KEY", ""),
    }
    lie = False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--lie":
            lie = True
        elif a.startswith("--") and a[2:] in opts:
            opts[a[2:]] = args.pop(0)
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"libsql_writer.py: unknown option {a}")
    if not db:
        sys.exit("libsql_writer.py: give the database path (argument or TORTURE_DB)")
    commits = int(opts["commits"])
    transfers = int(opts["transfers"])
    rows = span(opts["rows"])
    payload = span(opts["payload"])
    rng = random.Random(os.environ.get("TORTURE_SEED", "0"))

    # isolation_level=None: the module sends no BEGIN of its own, so COMMIT below is the commit.
    con = libsql.connect(
        db, isolation_level=None, timeout=30, encryption_key=opts["key"] or None
    )
    mode = con.execute(f"PRAGMA journal_mode={opts['journal-mode']}").fetchone()[0]
    con.execute(f"PRAGMA synchronous={opts['synchronous']}")
    sync = con.execute("PRAGMA synchronous").fetchone()[0]
    if opts["cache-size"] is not None:
        con.execute(f"PRAGMA cache_size={int(opts['cache-size'])}")
    version = con.execute("SELECT sqlite_version()").fetchone()[0]
    print(f"sqlite_version libsql {version}", flush=True)
    print(f"journal_mode {mode}", flush=True)
    print(f"synchronous {['off', 'normal', 'full', 'extra'][sync]}", flush=True)
    con.executescript(
        """
        BEGIN;
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
    start = con.execute("SELECT coalesce(max(seq), 0) FROM t").fetchone()[0] + 1
    for seq in range(start, start + commits):
        n = rng.randint(*rows)
        if lie:
            print(f"ack {seq}", flush=True)
        con.execute("BEGIN")
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
        con.execute("COMMIT")
        if not lie:
            print(f"ack {seq}", flush=True)
    con.close()


if __name__ == "__main__":
    main(sys.argv[1:])
