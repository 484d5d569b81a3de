#!/usr/bin/env python3
"""One schema change, committed and acknowledged, then the process dies before any checkpoint: the WAL
holds the change, and reopening the database has to replay it. DuckDB 1.4.x-1.5.x fail that replay for
several kinds of DDL ("INTERNAL Error: Failure while replaying WAL file ...: Calling
DatabaseManager::GetDefaultDatabase with no default database set"; duckdb issues #18259, #20543,
#22044, #25454); DuckDB 2.0 replays them. Same protocol as the other exec targets:

    torture exec --engine duckdb --engine-version 1.5.6 --recovered-sql 'SELECT max(n) FROM acked' \
        -- python3 workloads/exec/duckdb_ddl_replay.py {db} --case add-column-default

Transaction 1 creates `acked(n)` and the case's table with a row, and CHECKPOINTs (ack 1); then the
case's DDL runs and `acked` gets n = 2 (ack 2); automatic checkpoints are off and the program ends
with os._exit, as if killed right after its last ack. --list prints the cases.
"""

import os
import sys

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
    case = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--case":
            case = args.pop(0)
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
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("BEGIN")
    con.execute("CREATE TABLE acked(n INTEGER)")
    con.execute("CREATE TABLE t(a INTEGER)")
    con.execute("INSERT INTO t VALUES (1), (2), (3)")
    con.execute("INSERT INTO acked VALUES (1)")
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    print("ack 1", flush=True)
    for stmt in CASES[case]:
        con.execute(stmt)
    con.execute("INSERT INTO acked VALUES (2)")
    print("ack 2", flush=True)
    # No close, no checkpoint: the DDL stays in the WAL, as after a kill.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
