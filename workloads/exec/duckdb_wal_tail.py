#!/usr/bin/env python3
"""A DuckDB program for `torture exec --engine duckdb --fault power-loss`: bulk commits that stay in
the WAL, each acknowledged once COMMIT returned, with contents the check can recompute, so a crash
state is judged on three counts: does it open, is every acknowledged commit there, and is every row
one that some transaction wrote (a torn, never-acknowledged WAL entry may be dropped, never replayed
as other values).

    python3 workloads/exec/duckdb_wal_tail.py --make-seed /tmp/seed.duckdb   # with the DuckDB under test
    torture exec --engine duckdb --engine-version 2.0.1 --fault power-loss --fsync-commits-names \\
        --seed-db /tmp/seed.duckdb --recovered-sql 'SELECT DISTINCT seq FROM ledger' \\
        --verify-sql "$(python3 workloads/exec/duckdb_wal_tail.py --print-verify)" \\
        -- python3 workloads/exec/duckdb_wal_tail.py {db}

Commit N (from 1) inserts 2048 rows (N, i, repeat(chr(97 + N % 26), 8)), i = 0..2047, into `ledger`:
one DuckDB vector, so every commit's WAL entries have the same layout. Automatic checkpoints are off,
so each commit is appended to the one before (its first bytes share a file-system block with the
previous commit's last). The seed database (`--make-seed`) holds the schema, so no crash state is
the database file's own creation, which DuckDB never promised to survive.

`--align 16`: after each commit, small unacknowledged commits to `filler` until the WAL's size is a
multiple of 16. A commit then starts 16-aligned, and so does the 8-byte word grid of its rows'
entry (the table's name, six characters, makes the entry before it 40 bytes): a write torn at
512-byte sectors then zeroes whole words of one value, an even number of them, which DuckDB's entry
checksum (an XOR over per-word hashes, zero for a zero word) does not see.

Options: --commits N (default 8), --align A, --print-verify, --make-seed PATH.
"""

import os
import sys

ROWS = 2048

# Every surviving commit whole, with the values it wrote; nothing else.
VERIFY = f"""
SELECT CASE
  WHEN (SELECT count(*) FROM ledger WHERE seq < 1) > 0
    THEN 'rows nobody wrote: ' || (SELECT count(*) FROM ledger WHERE seq < 1) || ' rows with seq '
         || (SELECT string_agg(DISTINCT seq::VARCHAR, ',') FROM ledger WHERE seq < 1)
  WHEN (SELECT count(*) FROM ledger WHERE pad <> repeat(chr(97 + seq % 26), 8) OR i NOT BETWEEN 0 AND {ROWS - 1}) > 0
    THEN 'rows with values nobody wrote: '
         || (SELECT count(*) FROM ledger WHERE pad <> repeat(chr(97 + seq % 26), 8) OR i NOT BETWEEN 0 AND {ROWS - 1})
  WHEN (SELECT count(*) FROM (SELECT seq FROM ledger GROUP BY seq HAVING count(DISTINCT i) <> {ROWS} OR count(*) <> {ROWS})) > 0
    THEN 'a commit half there: seq '
         || (SELECT min(seq) FROM (SELECT seq FROM ledger GROUP BY seq HAVING count(DISTINCT i) <> {ROWS} OR count(*) <> {ROWS}))
  ELSE 'ok'
END
"""


def align(con, wal, a):
    """Small filler commits until the WAL's size is a multiple of a. A VARCHAR of length L adds L
    bytes to its entry, so the second filler lands unless the first changed a length prefix."""
    for _ in range(4):
        size = os.path.getsize(wal)
        if size % a == 0:
            return
        con.execute("INSERT INTO filler VALUES ('')")
        grew = os.path.getsize(wal) - size
        con.execute("INSERT INTO filler VALUES (repeat('f', ?))", [(-(size + 2 * grew)) % a + a])


def main(argv):
    if argv == ["--print-verify"]:
        print(" ".join(VERIFY.split()))
        return
    import duckdb

    db = os.environ.get("TORTURE_DB")
    opts = {"commits": "8", "align": "1", "make-seed": None}
    args = list(argv)
    while args:
        a = args.pop(0)
        if a.startswith("--") and a[2:] in opts and args:
            opts[a[2:]] = args.pop(0)
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"duckdb_wal_tail.py: unknown option {a}")
    db = opts["make-seed"] or db
    if not db:
        sys.exit("duckdb_wal_tail.py: give the database path (argument or TORTURE_DB)")

    con = duckdb.connect(db)
    con.execute("SET checkpoint_threshold = '10GB'")  # every commit stays in the WAL
    con.execute("CREATE TABLE IF NOT EXISTS ledger(seq INTEGER, i INTEGER, pad VARCHAR)")
    con.execute("CREATE TABLE IF NOT EXISTS filler(pad VARCHAR)")
    con.execute("CHECKPOINT")  # the schema in the database file; the WAL starts empty
    if opts["make-seed"]:
        con.close()
        return
    print(f"sqlite_version duckdb {duckdb.__version__}", flush=True)
    wal = db + ".wal"
    for n in range(1, int(opts["commits"]) + 1):
        con.execute("INSERT INTO ledger SELECT ?, range, repeat(chr(97 + ? % 26), 8) FROM range(?)", [n, n, ROWS])
        print(f"ack {n}", flush=True)
        if int(opts["align"]) > 1:
            align(con, wal, int(opts["align"]))
    os._exit(0)  # no checkpoint at close: the WAL is what recovery reads


if __name__ == "__main__":
    main(sys.argv[1:])
