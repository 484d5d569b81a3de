#!/usr/bin/env python3
"""Standalone reproduction (needs only `pip install pyturso`): a Turso database held open by one
process in the default mode is opened by a second process with the experimental multi-process WAL;
the open is not refused, the second process's COMMIT returns, and its row is gone after the first
process writes and closes.

    python3 -m venv /tmp/t && /tmp/t/bin/pip install pyturso==0.8.3 && /tmp/t/bin/python turso_mixed_mode.py

Turso's core refuses the mix ("Database is already open without experimental multiprocess WAL in
another process", core/database.rs); the Python package opens the file itself and never reaches
that check. Exit 1 when the acknowledged row is lost, 0 when the open is refused or the row kept.
`--first MODE --second MODE` (default, multi) choose the modes: `multi default` is the reverse
order (also lost); `default default` (the second open refused) and `multi multi` (row 2 kept) are
the controls.
"""
import os
import subprocess
import sys
import tempfile

import turso

MULTI = "multiprocess_wal"
CHILD = r"""
import sys, turso
features = sys.argv[2] or None
try:
    c = turso.connect(sys.argv[1], isolation_level=None, experimental_features=features)
    c.execute("INSERT INTO x VALUES (2)")
except Exception as e:
    print("refused:", type(e).__name__, e); sys.exit(0)
print("committed row 2; the second process sees", [r[0] for r in c.execute("SELECT a FROM x ORDER BY a")])
"""


def main():
    modes = {"first": "default", "second": "multi"}
    args = sys.argv[1:]
    while args:
        flag = args.pop(0)
        if flag[2:] not in modes or not args or args[0] not in ("default", "multi"):
            sys.exit("usage: turso_mixed_mode.py [--first default|multi] [--second default|multi]")
        modes[flag[2:]] = args.pop(0)
    first = MULTI if modes["first"] == "multi" else None
    second = MULTI if modes["second"] == "multi" else ""
    path = os.path.join(tempfile.mkdtemp(prefix="turso-mixed-"), "x.db")
    print(f"pyturso (SQLite {turso.sqlite_version}); first process: {first or 'default mode'}, "
          f"second: {second or 'default mode'}")
    p1 = turso.connect(path, isolation_level=None, experimental_features=first)
    p1.execute("CREATE TABLE x(a INTEGER)")
    p1.execute("INSERT INTO x VALUES (1)")
    out = subprocess.run([sys.executable, "-c", CHILD, path, second], capture_output=True, text=True)
    print("second process:", (out.stdout + out.stderr).strip())
    if out.stdout.startswith("refused"):
        print("OK: the engine refused the second open")
        return 0
    print("first process sees", [r[0] for r in p1.execute("SELECT a FROM x ORDER BY a")])
    p1.execute("INSERT INTO x VALUES (3)")
    p1.close()
    rows = [r[0] for r in turso.connect(path).execute("SELECT a FROM x ORDER BY a")]
    print("after both closed, a fresh open sees", rows)
    if 2 not in rows:
        print("BUG: row 2 was committed (its COMMIT returned) and is lost")
        return 1
    print("OK: row 2 kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
