#!/usr/bin/env python3
"""A small encrypted libSQL program for the fault layer's tests (the `libsql` package, Turso's
SQLite fork): `libsql_writer.py DB N KEY` commits N numbered rows in WAL + synchronous=FULL and
prints `ack N` after each COMMIT (N = 0 prepares the database); `libsql_writer.py --check KEY
DIR...` opens each DIR/x.db with the key and prints `ok SEQ,...` or `damaged REASON` per folder."""

import os
import sys

import libsql


def connect(db, key):
    return libsql.connect(db, isolation_level=None, encryption_key=key)


def write(db, n, key):
    con = connect(db, key)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, pad BLOB)")
    for i in range(1, n + 1):
        con.execute("BEGIN")
        con.execute("INSERT INTO t VALUES (?, zeroblob(1500))", (i,))
        con.execute("COMMIT")
        print(f"ack {i}", flush=True)
    con.close()


def check(key, dirs):
    for d in dirs:
        try:
            con = connect(os.path.join(d, "x.db"), key)
            ic = con.execute("PRAGMA integrity_check").fetchone()[0]
            if ic != "ok":
                raise RuntimeError(ic)
            seqs = [r[0] for r in con.execute("SELECT seq FROM t").fetchall()]
            con.close()
            print("ok " + ",".join(str(s) for s in seqs), flush=True)
        except Exception as e:  # any failure to open, decrypt or read is damage
            print("damaged " + str(e).replace("\n", " ")[:200], flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3:])
    else:
        write(sys.argv[1], int(sys.argv[2]), sys.argv[3])
