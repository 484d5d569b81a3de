#!/usr/bin/env python3
"""Standalone reproduction (needs only `pip install duckdb`): DuckDB's WAL replay after a power cut
that left the file's new size and new blocks on disk but not the rewrite of the one block the new
commit shares with the previous, acknowledged one.

    python3 -m venv /tmp/d && /tmp/d/bin/pip install duckdb==2.0.1 && /tmp/d/bin/python duckdb_torn_wal_block.py

What it builds, for each of 16 sizes of commit 1 (so commit 2 starts at 16 different offsets):

- commit 1 is acknowledged: its COMMIT returned after DuckDB fdatasync'ed the WAL (size S1);
- commit 2 (2000 rows) is appended to the WAL; the power fails before its fdatasync returns, so it
  was never acknowledged;
- the crash state: the WAL has commit 2's full length and every block after the one holding byte
  S1, but that shared block holds what the disk had: commit 1's bytes, zeros after them
  (`old-block`), or only its first k 512-byte sectors rewritten (`torn-k`, k = 1..7).

Acceptable outcomes are commit 1 alone (commit 2 dropped) or commits 1 and 2 whole. DuckDB instead
either refuses to open (`Corrupt WAL file: … checksum … does not match`: acknowledged commit 1 is
unreachable until someone deletes the WAL) or, when the zeroed bytes are an even number of copies of
one 8-byte word, opens with rows nobody wrote (commit 2's `seq` values replaced by 0): its entry
checksum XORs a hash of each 8-byte word, independent of the word's position, and the hash of a zero
word is zero (src/common/checksum.cpp).

Prints one line per (size, state) and a tally; exit 1 if any state opened with rows nobody wrote.
`--size K` runs one commit-1 size, `--keep DIR` leaves the crash states there.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import duckdb

BLOCK, SECTOR = 4096, 512
CHILD = r"""
import duckdb, os, sys
db, k = sys.argv[1], int(sys.argv[2])
c = duckdb.connect(db)
c.execute("SET checkpoint_threshold = '10GB'")        # keep both commits in the WAL
c.execute("CREATE TABLE t(seq INTEGER, pad VARCHAR)")
c.execute("CHECKPOINT")                              # the schema in the database file, the WAL empty
c.execute("INSERT INTO t VALUES (1, ?)", ["a" * k])  # commit 1: acknowledged
print(os.path.getsize(db + ".wal"), flush=True)
c.execute("INSERT INTO t SELECT 2, repeat('x', 100) FROM range(2000)")  # commit 2: never acknowledged
print(os.path.getsize(db + ".wal"), flush=True)
os._exit(0)                                          # no checkpoint, no close
"""


def states(s1, s2):
    """(name, byte ranges of the WAL that hold the disk's old bytes: zeros) for the shared block."""
    start = s1 // BLOCK * BLOCK
    end = min(start + BLOCK, s2)
    if s1 == start:
        return []  # commit 2 starts on a fresh block: no shared block to tear
    out = [("old-block", (s1, end))]
    for k in range(1, BLOCK // SECTOR):
        torn = max(s1, start + k * SECTOR)
        if torn < end:
            out.append((f"torn-{k}", (torn, end)))
    return out


def reopen(folder):
    try:
        con = duckdb.connect(os.path.join(folder, "x.duckdb"))
        rows = con.execute("SELECT seq, count(*) FROM t GROUP BY seq ORDER BY seq").fetchall()
        con.close()
    except Exception as e:  # duckdb raises several classes; the message says which check failed
        return "refused", f"{type(e).__name__}: {str(e)[:110]}"
    if rows in ([(1, 1)], [(1, 1), (2, 2000)]):
        return "ok", str(rows)
    return "wrong-rows", str(rows)


def main(argv):
    sizes, keep = range(16), None
    while argv:
        flag = argv.pop(0)
        if flag == "--size" and argv:
            sizes = [int(argv.pop(0))]
        elif flag == "--keep" and argv:
            keep = argv.pop(0)
        else:
            sys.exit("usage: duckdb_torn_wal_block.py [--size K] [--keep DIR]")
    print(f"duckdb {duckdb.__version__}")
    tally = {}
    work = tempfile.mkdtemp(prefix="duckdb-torn-")
    for k in sizes:
        base = os.path.join(work, f"k{k}")
        os.makedirs(base)
        out = subprocess.run([sys.executable, "-c", CHILD, os.path.join(base, "x.duckdb"), str(k)],
                             capture_output=True, text=True, check=True).stdout.split()
        s1, s2 = int(out[0]), int(out[1])
        for name, (lo, hi) in states(s1, s2):
            folder = os.path.join(keep or work, f"k{k}-{name}")
            shutil.copytree(base, folder, dirs_exist_ok=True)
            with open(os.path.join(folder, "x.duckdb.wal"), "r+b") as f:
                f.seek(lo)
                f.write(bytes(hi - lo))
            verdict, detail = reopen(folder)
            tally[verdict] = tally.get(verdict, 0) + 1
            print(f"commit 1 +{k:2d} chars: WAL {s1} -> {s2} bytes, {name:9s} (zeros {lo}..{hi}): {verdict}: {detail}")
            if not keep:
                shutil.rmtree(folder)
    shutil.rmtree(work)
    print("tally:", ", ".join(f"{v} {k}" for k, v in sorted(tally.items())))
    if tally.get("wrong-rows"):
        print("BUG: a never-acknowledged, torn WAL entry was replayed as rows nobody wrote")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
