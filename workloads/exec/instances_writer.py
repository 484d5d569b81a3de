#!/usr/bin/env python3
"""Several copies of one program on one database, each numbering its commits from 1: what a pool of
workers or several processes of one service do. For `torture exec --instances N`.

Instance I (TORTURE_INSTANCE) inserts (I, N) into t for its commit N and prints `ack N` after COMMIT
returned. Equal numbers of different instances are different commits: check each instance against
its own acks with a two-column --recovered-sql:

    torture exec --instances 3 --fault power-loss --recovered-sql 'SELECT inst, seq FROM t' \
        -- python3 workloads/exec/instances_writer.py {db}

Options:
  --commits N          commits per instance (default 30)
  --drop K:I           instance I rolls back every K-th transaction and acknowledges it all the same
                       (a program that swallows a failed COMMIT): the positive control
"""

import os
import sqlite3
import sys
import time


def main():
    args = sys.argv[1:]
    db = args.pop(0)
    commits, drop_every, drop_inst = 30, 0, -1
    while args:
        a = args.pop(0)
        if a == "--commits":
            commits = int(args.pop(0))
        elif a == "--drop":
            k, _, i = args.pop(0).partition(":")
            drop_every, drop_inst = int(k), int(i)
        else:
            sys.exit(f"instances_writer.py: unknown option {a}")
    inst = int(os.environ.get("TORTURE_INSTANCE", "0"))
    con = sqlite3.connect(db, isolation_level=None, timeout=30)
    for _ in range(200):
        try:
            con.execute("PRAGMA journal_mode=wal")
            con.execute("CREATE TABLE IF NOT EXISTS t(inst INTEGER, seq INTEGER, PRIMARY KEY(inst, seq))")
            break
        except sqlite3.OperationalError:
            time.sleep(0.01)
    con.execute("PRAGMA synchronous=full")
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    sync = {0: "off", 1: "normal", 2: "full", 3: "extra"}[con.execute("PRAGMA synchronous").fetchone()[0]]
    print(f"journal_mode {mode}", flush=True)
    print(f"synchronous {sync}", flush=True)
    for n in range(1, commits + 1):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?, ?)", (inst, n))
        dropped = drop_every and inst == drop_inst and n % drop_every == 0
        con.execute("ROLLBACK" if dropped else "COMMIT")
        print(f"ack {n}", flush=True)
    con.close()


if __name__ == "__main__":
    main()
