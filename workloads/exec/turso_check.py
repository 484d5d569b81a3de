#!/usr/bin/env python3
"""Turso's own opinion of a database `turso_writer.py` left, for `torture exec --verify-cmd`: it
opens the file with Turso (pyturso, default mode), runs `PRAGMA integrity_check`, and checks that
every transaction is whole (the `item` rows of each `t` row are all there, the
accounts' total unchanged). Prints `ok` and exits 0,
or prints what is wrong and exits 1 (the lab then records `atomicity` with this text).

    --verify-cmd 'python3 workloads/exec/turso_check.py {db}'
"""

import sys

import turso


def main(db):
    try:
        con = turso.connect(db, isolation_level=None)
        integrity = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        t_rows, t_sum = con.execute("SELECT count(*), coalesce(sum(rows), 0) FROM t").fetchone()
        items = con.execute("SELECT count(*) FROM item").fetchone()[0]
        accounts, total = con.execute("SELECT count(*), coalesce(sum(balance), 0) FROM account").fetchone()
    except Exception as e:
        print(f"turso {turso.sqlite_version}: {type(e).__name__}: {e}")
        return 1
    if integrity != ["ok"]:
        print(f"turso integrity_check: {'; '.join(integrity[:3])}")
        return 1
    if items != t_sum:
        print(f"turso: {items} item rows, the {t_rows} t rows say {t_sum}")
        return 1
    if total != 100 * accounts:
        print(f"turso: the {accounts} accounts hold {total}, not {100 * accounts} (half a transfer)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: turso_check.py DB")
    sys.exit(main(sys.argv[1]))
