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
and CHECKPOINTs, so the database file holds them (not acknowledged: the lab's calibrated kill window
starts at the first ack, which is then the first replace's); then each of REPLACES transactions deletes the whole
key range and inserts the same keys again with new values (and `t(seq)`), COMMITs, and prints
`ack N`. Automatic checkpoints are off (checkpoint_threshold 1TB), so the replace stays in the WAL
while the program lingers (--linger seconds, small acknowledged commits every 100 ms) before it
checkpoints and closes: a kill in that time leaves the replace to WAL replay. The check reopens the
file (WAL replay) and the verify SQL looks up keys one by one.

Options: --rows N (default 130000), --replaces N (default 1), --linger S (default 5),
--print-verify (print the verify SQL).
"""

import os
import sys
import time

STARTED = time.monotonic()

ROWS = 130_000
# Keys looked up one by one after recovery: the ends, the middle, and a spread in between.
PROBES = 8


def probe_keys(rows):
    keys = {0, 1, rows // 2, rows - 2, rows - 1}
    keys.update(rows * i // PROBES for i in range(PROBES))
    return sorted(k for k in keys if 0 <= k < rows)


def verify_sql(rows):
    """One row, `ok` or what is missing: the table's count by a scan, and each probe by key (an
    equality filter on the primary key, answered from its index)."""
    keys = probe_keys(rows)
    lookups = " + ".join(f"(SELECT count(*) FROM kv WHERE k = {k})" for k in keys)
    return (
        f"WITH c AS (SELECT (SELECT count(*) FROM kv) AS scanned, {lookups} AS found) "
        f"SELECT CASE WHEN scanned <> {rows} THEN 'a scan finds ' || scanned || ' rows, not {rows}' "
        f"WHEN found <> {len(keys)} THEN 'point lookups by key found ' || found || ' of {len(keys)} keys that a scan finds' "
        f"ELSE 'ok' END FROM c"
    )


def main(argv):
    db = os.environ.get("TORTURE_DB")
    rows, replaces, linger = ROWS, 1, 5.0
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--rows":
            rows = int(args.pop(0))
        elif a == "--replaces":
            replaces = int(args.pop(0))
        elif a == "--linger":
            linger = float(args.pop(0))
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
    con.execute("BEGIN")
    con.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v BIGINT NOT NULL)")
    con.execute("CREATE TABLE t(seq INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO kv SELECT i, i FROM range(?) r(i)", [rows])
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("COMMIT")
    # Not acknowledged: the lab anchors its kill window on the first ack, which is the replace's.
    con.execute("CHECKPOINT")
    for seq in range(2, 2 + replaces):
        con.execute("BEGIN")
        con.execute("DELETE FROM kv WHERE k BETWEEN 0 AND ?", [rows - 1])
        con.execute("INSERT INTO kv SELECT i, i * ? FROM range(?) r(i)", [seq, rows])
        con.execute("INSERT INTO t VALUES (?)", [seq])
        con.execute("COMMIT")
        print(f"ack {seq}", flush=True)
    last = 1 + replaces
    # Linger like a running application: small commits every 100 ms (each acknowledged) and no
    # checkpoint, so a kill now leaves the large change in the WAL. Then close cleanly (the
    # uninterrupted run checkpoints and passes the check).
    # The lab's calibrated window reaches past the first ack by as long as the first ack took:
    # linger at least that long (plus a margin), however slow a loaded machine made the start
    # (give the lab --calibration-timeout 180s: a calibration run cut short leaves the WAL).
    nxt = last + 1
    deadline = time.monotonic() + min(120, max(linger, 1.5 * (time.monotonic() - STARTED) + 1))
    while time.monotonic() < deadline:
        time.sleep(0.1)
        con.execute("INSERT INTO t VALUES (?)", [nxt])
        print(f"ack {nxt}", flush=True)
        nxt += 1
    con.execute("CHECKPOINT")
    con.close()


if __name__ == "__main__":
    main(sys.argv[1:])
