#!/usr/bin/env python3
"""Replace a key range in one large DuckDB transaction, then die before any checkpoint: the trigger of
duckdb PR #24744 ("Allow duplicates in index in ReplayRowGroupData", DuckDB 1.5.0-1.5.5, fixed in
1.5.6), written from its public description. A large insert is written optimistically (straight to
row groups in the database file) and logged in the WAL as row-group pointers; replaying that entry
inserted the rows into the primary-key index without allowing the temporary duplicates a delete +
re-insert of the same keys leaves until commit, so the inserts failed silently, the deletes were
applied, and the index lost the keys: point lookups by key miss rows that a scan still finds.

    torture exec --engine duckdb --engine-version 1.5.5 --recovered-sql 'SELECT max(seq) FROM t' \
        --verify-sql "$(python3 workloads/exec/duckdb_replace_range.py --print-verify)" \
        -- python3 workloads/exec/duckdb_replace_range.py {db}

What it does: transaction 1 creates `kv(k INTEGER PRIMARY KEY, v BIGINT)` with ROWS keys 0..ROWS-1
and CHECKPOINTs, so the database file holds them; then each of REPLACES transactions deletes the whole
key range and inserts the same keys again with new values (and `t(seq)`), COMMITs, and prints
`ack N`. Automatic checkpoints are off (checkpoint_threshold 1TB, none on shutdown) and the program
ends with os._exit, so every replace stays in the WAL, as if the process had been killed right after
its last ack. The check reopens the file (WAL replay) and the verify SQL looks up keys one by one.

Options: --rows N (default 130000), --replaces N (default 1), --print-verify (print the verify SQL).
"""

import os
import sys

ROWS = 130_000
# Keys looked up one by one after recovery: the ends, the middle, and a spread in between.
PROBES = 64


def probe_keys(rows):
    keys = {0, 1, rows // 2, rows - 2, rows - 1}
    keys.update(rows * i // PROBES for i in range(PROBES))
    return sorted(k for k in keys if 0 <= k < rows)


def verify_sql(rows):
    """One row, `ok` or what is missing: the table's count by a scan, and each probe by key (an
    equality filter on the primary key, answered from its index)."""
    lookups = " + ".join(f"(SELECT count(*) FROM kv WHERE k = {k})" for k in probe_keys(rows))
    n = len(probe_keys(rows))
    return (
        f"SELECT CASE WHEN (SELECT count(*) FROM kv) <> {rows} "
        f"THEN 'scan finds ' || (SELECT count(*) FROM kv) || ' rows, not {rows}' "
        f"WHEN ({lookups}) <> {n} "
        f"THEN 'point lookups by key found ' || ({lookups}) || ' of {n} keys that a scan finds' "
        f"ELSE 'ok' END"
    )


def main(argv):
    db = os.environ.get("TORTURE_DB")
    rows, replaces = ROWS, 1
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--rows":
            rows = int(args.pop(0))
        elif a == "--replaces":
            replaces = int(args.pop(0))
        elif a == "--print-verify":
            print(verify_sql(rows))
            return
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"duckdb_replace_range.py: unknown option {a}")
    if not db:
        sys.exit("duckdb_replace_range.py: give the database path (argument or TORTURE_DB)")

    import duckdb

    print(f"sqlite_version duckdb {duckdb.__version__}", flush=True)
    con = duckdb.connect(db)
    con.execute("SET checkpoint_threshold = '1TB'")
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("BEGIN")
    con.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v BIGINT NOT NULL)")
    con.execute("CREATE TABLE t(seq INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO kv SELECT i, i FROM range(?) r(i)", [rows])
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    print("ack 1", flush=True)
    for seq in range(2, 2 + replaces):
        con.execute("BEGIN")
        con.execute("DELETE FROM kv WHERE k BETWEEN 0 AND ?", [rows - 1])
        con.execute("INSERT INTO kv SELECT i, i * ? FROM range(?) r(i)", [seq, rows])
        con.execute("INSERT INTO t VALUES (?)", [seq])
        con.execute("COMMIT")
        print(f"ack {seq}", flush=True)
    sys.stdout.flush()
    # No close, no checkpoint: the replaces stay in the WAL, as after a kill.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
