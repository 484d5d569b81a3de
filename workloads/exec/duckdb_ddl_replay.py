#!/usr/bin/env python3
"""One schema change, committed and acknowledged, then the process dies before any checkpoint: the WAL
holds the change, and reopening the database has to replay it. DuckDB 1.4.x-1.5.x fail that replay for
several kinds of DDL ("INTERNAL Error: Failure while replaying WAL file ...: Calling
DatabaseManager::GetDefaultDatabase with no default database set"; duckdb issues #18259, #20543,
#22044, #25454); DuckDB 2.0 replays them. Same protocol as the other exec targets:

    torture exec --engine duckdb --engine-version 1.5.6 --recovered-sql 'SELECT max(n) FROM acked' \
        -- python3 workloads/exec/duckdb_ddl_replay.py {db} --case add-column-default

Transaction 1 creates `acked(n)` and the case's table with a row, and CHECKPOINTs (not acknowledged:
the lab's calibrated kill window starts at the first ack); then the case's DDL runs and `acked` gets
n = 2 (ack 2). Automatic checkpoints are off, so the DDL stays in the
WAL while the program lingers (--linger seconds, default 5: small acknowledged commits every 100 ms)
before it checkpoints and closes; a kill in that time leaves the DDL to WAL replay. --list prints the
cases.
"""

import os
import sys
import time

STARTED = time.monotonic()

CASES = {
    # ALTER TABLE ADD COLUMN with a DEFAULT expression (duckdb #18259)
    "add-column-default": [
        "ALTER TABLE t ADD COLUMN b VARCHAR DEFAULT concat('x', 'y')",
    ],
    # ALTER COLUMN SET TYPE with a USING expression (duckdb #20543)
    "set-type-using": [
        "ALTER TABLE t ALTER COLUMN a SET TYPE VARCHAR USING concat(a, '')",
    ],
    # a generated column, then ADD PRIMARY KEY (duckdb #25454's schema)
    "generated-add-pk": [
        "CREATE TABLE g(x INT GENERATED ALWAYS AS (a + 1), a INT)",
        "INSERT INTO g(a) VALUES (1)",
        "ALTER TABLE g ADD PRIMARY KEY (a)",
    ],
    # the negative control: plain DDL every version replays
    "add-column-plain": [
        "ALTER TABLE t ADD COLUMN b VARCHAR",
    ],
}


def main(argv):
    db = os.environ.get("TORTURE_DB")
    case, linger = None, 5.0
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--case":
            case = args.pop(0)
        elif a == "--linger":
            linger = float(args.pop(0))
        elif a == "--list":
            print("\n".join(CASES))
            return
        elif not a.startswith("--"):
            db = a
        else:
            sys.exit(f"duckdb_ddl_replay.py: unknown option {a}")
    if case not in CASES:
        sys.exit(f"duckdb_ddl_replay.py: --case one of {', '.join(CASES)}")
    if not db:
        sys.exit("duckdb_ddl_replay.py: give the database path (argument or TORTURE_DB)")

    import duckdb

    print(f"sqlite_version duckdb {duckdb.__version__}", flush=True)
    con = duckdb.connect(db)
    con.execute("SET checkpoint_threshold = '1TB'")
    con.execute("BEGIN")
    con.execute("CREATE TABLE acked(n INTEGER)")
    con.execute("CREATE TABLE t(a INTEGER)")
    con.execute("INSERT INTO t VALUES (1), (2), (3)")
    con.execute("INSERT INTO acked VALUES (1)")
    con.execute("COMMIT")
    # Not acknowledged: the lab anchors its kill window on the first ack, which is the DDL's.
    con.execute("CHECKPOINT")
    for stmt in CASES[case]:
        con.execute(stmt)
    con.execute("INSERT INTO acked VALUES (2)")
    print("ack 2", flush=True)
    last = 2
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
        con.execute("INSERT INTO acked VALUES (?)", [nxt])
        print(f"ack {nxt}", flush=True)
        nxt += 1
    con.execute("CHECKPOINT")
    con.close()


if __name__ == "__main__":
    main(sys.argv[1:])
