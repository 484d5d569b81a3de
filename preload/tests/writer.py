#!/usr/bin/env python3
"""A small SQLite program for the fault layer's tests: commits numbered rows, prints `ack N [ID]`.

    writer.py DB --commits N [--journal-mode M] [--synchronous S] [--id ID] [--rows R]
              [--payload BYTES] [--start S] [--autocheckpoint PAGES] [--fork] [--exec-child]
              [--ignore-errors]

Each transaction N inserts R rows into `item` (payload bytes each) and one row (N, ID) into `t`,
then COMMITs and prints `ack N` (with ` ID` when --id is given), flushed at once.
--fork: after opening, fork; parent and child each write --commits transactions (ids ID-p, ID-c).
--ignore-errors: a buggy program, the positive control of io-error: when COMMIT fails it rolls
back and prints `ack N` anyway, then carries on.
--exec-child: before writing, start a copy of this program with exec (os.execv after fork) that
writes with id ID-x, inheriting stdout; the parent waits for it.
"""

import os
import sqlite3
import sys


def parse(argv):
    o = {"db": None, "commits": 20, "journal-mode": "wal", "synchronous": "full", "id": None,
         "rows": 3, "payload": 300, "start": 1, "autocheckpoint": None, "fork": False,
         "exec-child": False, "ignore-errors": False}
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("--fork", "--exec-child", "--ignore-errors"):
            o[a[2:]] = True
        elif a.startswith("--"):
            o[a[2:]] = args.pop(0)
        else:
            o["db"] = a
    if not o["db"] or not set(o) <= {"db", "commits", "journal-mode", "synchronous", "id", "rows",
                                      "payload", "start", "autocheckpoint", "fork", "exec-child",
                                      "ignore-errors"}:
        sys.exit("writer.py: give DB and known options only")
    return o


def write(o, ident):
    con = sqlite3.connect(o["db"], isolation_level=None, timeout=60)
    con.execute(f"PRAGMA journal_mode={o['journal-mode']}")
    con.execute(f"PRAGMA synchronous={o['synchronous']}")
    if o["autocheckpoint"] is not None:
        con.execute(f"PRAGMA wal_autocheckpoint={int(o['autocheckpoint'])}")
    con.execute("CREATE TABLE IF NOT EXISTS t(seq INTEGER, writer TEXT, PRIMARY KEY(seq, writer))")
    con.execute("CREATE TABLE IF NOT EXISTS item(id INTEGER PRIMARY KEY, seq INTEGER, payload BLOB)")
    rows, payload, start = int(o["rows"]), int(o["payload"]), int(o["start"])
    for n in range(start, start + int(o["commits"])):
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO item(seq, payload) VALUES (?, ?)",
                        [(n, bytes([n % 251]) * payload) for _ in range(rows)])
        con.execute("INSERT INTO t(seq, writer) VALUES (?, ?)", (n, ident or ""))
        try:
            con.execute("COMMIT")
        except sqlite3.Error:
            if not o["ignore-errors"]:
                raise
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        print(f"ack {n} {ident}" if ident else f"ack {n}", flush=True)
    con.close()


def main():
    o = parse(sys.argv[1:])
    ident = o["id"]
    if o["exec-child"]:
        pid = os.fork()
        if pid == 0:
            args = [a for a in sys.argv[1:] if a != "--exec-child"]
            args += ["--id", f"{ident or 'w'}-x"]
            os.execv(sys.executable, [sys.executable, sys.argv[0]] + args)
        write(o, ident)
        os.waitpid(pid, 0)
        return
    if o["fork"]:
        # Create the database before the fork; each process then opens its own connection.
        sqlite3.connect(o["db"]).close()
        pid = os.fork()
        if pid == 0:
            write(o, f"{ident or 'w'}-c")
            os._exit(0)
        write(o, f"{ident or 'w'}-p")
        os.waitpid(pid, 0)
        return
    write(o, ident)


if __name__ == "__main__":
    main()
