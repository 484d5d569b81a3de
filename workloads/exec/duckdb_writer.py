#!/usr/bin/env python3
"""An application that writes to DuckDB through the `duckdb` package from PyPI, for `torture exec
--engine duckdb` — the way the DuckDB postmortem's app reached its database.

Like python_writer.py it prints `ack N` on stdout once COMMIT of transaction N returned. Each
transaction N inserts some `item` rows, one `t` row with seq = N, and adds the row count to the
`counter` row, so `verify_duckdb.sql` can check that no transaction is half there.

    pip install duckdb
    torture exec --engine duckdb --recovered-sql 'SELECT max(seq) FROM t' \
        --verify-sql "$(cat workloads/exec/verify_duckdb.sql)" -- python3 workloads/exec/duckdb_writer.py {db}

Options (all optional):
  --commits N               stop after N commits (default 1000)
  --rows LO..HI             item rows per transaction (default 1..200)
  --payload LO..HI          characters per row (default 8..2000)
  --checkpoint-threshold S  DuckDB's checkpoint_threshold, e.g. 1MB (default: DuckDB's, 16MB); a
                            small one makes DuckDB checkpoint the WAL into the file while it works
"""

import os
import random
import sys

import duckdb


def span(text):
    lo, _, hi = text.partition("..")
    return int(lo), int(hi or lo)


def main(argv):
    db = os.environ.get("TORTURE_DB")
    opts = {"commits": "1000", "rows": "1..200", "payload": "8..2000", "checkpoint-threshold": None}
    args = list(argv)
    while args:
        a = args.pop(0)
        if a.startswith("--") and a[2:] in opts:
            opts[a[2:]] = args.pop(0)
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"duckdb_writer.py: unknown option {a}")
    if not db:
        sys.exit("duckdb_writer.py: give the database path (argument or TORTURE_DB)")
    rows = span(opts["rows"])
    payload = span(opts["payload"])
    rng = random.Random(os.environ.get("TORTURE_SEED", "0"))

    con = duckdb.connect(db)
    if opts["checkpoint-threshold"]:
        con.execute(f"SET checkpoint_threshold = '{opts['checkpoint-threshold']}'")
    con.execute(
        """
        BEGIN;
        CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS item(seq INTEGER NOT NULL, n INTEGER NOT NULL, payload VARCHAR);
        CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, items BIGINT NOT NULL);
        INSERT OR IGNORE INTO counter VALUES (0, 0);
        COMMIT;
        """
    )
    start = con.execute("SELECT coalesce(max(seq), 0) FROM t").fetchone()[0] + 1
    for seq in range(start, start + int(opts["commits"])):
        n = rng.randint(*rows)
        width = rng.randint(*payload)
        con.execute("BEGIN")
        # One statement per transaction body, as an analytics app loads a batch.
        con.execute(
            "INSERT INTO item SELECT ?, i, repeat(chr(97 + (i % 26)::INTEGER), ?) FROM range(?) r(i)",
            [seq, width, n],
        )
        con.execute("INSERT INTO t VALUES (?, ?)", [seq, n])
        con.execute("UPDATE counter SET items = items + ? WHERE id = 0", [n])
        con.execute("COMMIT")
        print(f"ack {seq}", flush=True)
    con.close()


if __name__ == "__main__":
    main(sys.argv[1:])
