#!/usr/bin/env python3
"""A small DuckDB program for the fault layer's tests: duck_writer.py DB N commits numbered rows
and prints `ack N` after each COMMIT; `duck_writer.py --check DIR...` opens each DIR/x.duckdb
(replaying its WAL) and prints one line per folder: `ok SEQ,SEQ,...` or `damaged REASON`."""

import os
import sys

import duckdb


def write(db, n):
    con = duckdb.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS t(seq INTEGER, pad VARCHAR)")
    for i in range(1, n + 1):
        con.execute("BEGIN")
        con.execute("INSERT INTO t VALUES (?, ?)", [i, "x" * 2000])
        con.execute("COMMIT")
        print(f"ack {i}", flush=True)
    con.close()


def check(dirs):
    for d in dirs:
        try:
            con = duckdb.connect(os.path.join(d, "x.duckdb"))
            has = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'").fetchone()[0]
            seqs = [r[0] for r in con.execute("SELECT seq FROM t").fetchall()] if has else []
            con.close()
            print("ok " + ",".join(str(s) for s in seqs), flush=True)
        except Exception as e:  # any failure to open or read is damage
            print("damaged " + str(e).replace("\n", " ")[:200], flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--check":
        check(sys.argv[2:])
    else:
        write(sys.argv[1], int(sys.argv[2]))
