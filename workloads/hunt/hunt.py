#!/usr/bin/env python3
"""Generated transaction programs for `torture hunt`: generate, validate, run, judge.

    hunt.py gen --engine sqlite|duckdb --seed N [--weights FILE.toml]   > program.json
    hunt.py validate PROGRAM OUT         # run once on a fresh database; drop what the engine
                                         # rejects; write the valid program and its model hashes
    hunt.py run PROGRAM DB               # the program under test: one transaction at a time,
                                         # `ack K` after each COMMIT returned
    hunt.py oracle PROGRAM DB            # the check of a recovered database (exit 0 = consistent)
    hunt.py repro PROGRAM STATE_DIR      # a bug report's reproduction: check a saved crash state

A program is JSON: {"engine", "seed", "transactions": [[sql, ...], ...], "maintenance": [...]}.
Transaction K (1-based) also inserts K into `hunt_acks`, so `--recovered-sql 'SELECT k FROM
hunt_acks'` gives the set of surviving commits. `validate` stores `model`: the content hash of
every table after each prefix of 0..N committed transactions, from a run without a crash.

The oracle (stronger than "every ack survived", which the lab checks itself):
- the database opens, and the engine's own integrity check passes (SQLite; under the lab that is
  the lab's check, so the oracle skips it there);
- prefix consistency: the recovered content equals the model after some prefix of the
  committed transactions — unacknowledged work may be absent, never partly present, never
  replaced by values nobody wrote;
- index consistency: for every table, a lookup of each key through the primary-key index agrees
  with a full scan (sampled keys), and `count(*)` by scan equals the count through an index.
"""

import hashlib
import json
import os
import random
import sys

ENGINES = ("sqlite", "duckdb")

# Weights of the statement kinds; a TOML file given with --weights may override any of them.
WEIGHTS = {
    "insert_one": 30,
    "insert_bulk": 6,
    "insert_huge": 1,
    "update_range": 12,
    "delete_range": 8,
    "delete_reinsert": 5,
    "upsert": 10,
    "create_table": 3,
    "create_index": 4,
    "drop_index": 2,
    "add_column": 2,
    "alter_type": 2,
    "drop_table": 1,
    "savepoint": 3,
}
MAINTENANCE = {"checkpoint": 4, "vacuum": 1, "none": 20}
# Bulk sizes: large writes take other code paths (SQLite's spill, DuckDB's optimistic writes).
BULK_SIZES = (100, 100, 1000, 1000, 5000, 20000)
# `insert_huge`: one statement of this many rows (its own weight; a large write is where DuckDB's
# optimistic writes and SQLite's cache spill live).
HUGE = 130000


def load_weights(path):
    import tomllib

    with open(path, "rb") as f:
        w = tomllib.load(f)
    for k, v in w.items():
        if k in WEIGHTS:
            WEIGHTS[k] = int(v)
        elif k in MAINTENANCE:
            MAINTENANCE[k] = int(v)
        else:
            sys.exit(f"hunt.py: unknown weight {k!r} in {path}; known: {', '.join(list(WEIGHTS) + list(MAINTENANCE))}")


def pick(rng, weights):
    kinds = [k for k, w in weights.items() if w > 0]
    return rng.choices(kinds, [weights[k] for k in kinds])[0]


class Gen:
    def __init__(self, engine, seed):
        self.engine = engine
        self.rng = random.Random(seed)
        self.tables = {}  # name -> {"cols": [...], "next": int}
        self.indexes = {}  # name -> table
        self.n_tables = 0
        self.n_indexes = 0

    def expr(self):
        r = self.rng.random()
        if r < 0.5:
            return str(self.rng.randint(-1000, 1000))
        if r < 0.8:
            return f"({self.rng.randint(0, 100)} * {self.rng.randint(1, 9)} + {self.rng.randint(0, 7)})"
        return f"length('{'x' * self.rng.randint(0, 30)}')"

    def create_table(self):
        self.n_tables += 1
        t = f"t{self.n_tables}"
        self.tables[t] = {"cols": ["a", "b"], "next": 1}
        gen = ""
        if self.rng.random() < 0.3:
            gen = ", g INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL"
        return [
            f"CREATE TABLE {t}(id INTEGER PRIMARY KEY, a INTEGER NOT NULL DEFAULT ({self.expr()}), "
            f"b VARCHAR CHECK (length(b) < 10000){gen})"
        ]

    def table(self):
        return self.rng.choice(sorted(self.tables))

    def bulk_rows(self, t, n, mult):
        start = self.tables[t]["next"]
        self.tables[t]["next"] += n
        pad = self.rng.randint(0, 200)
        if self.engine == "sqlite":
            return (
                f"INSERT INTO {t}(id, a, b) WITH RECURSIVE r(i) AS (SELECT {start} UNION ALL "
                f"SELECT i + 1 FROM r WHERE i < {start + n - 1}) SELECT i, i * {mult}, "
                f"printf('%.{pad}d', i) FROM r"
            )
        return (
            f"INSERT INTO {t}(id, a, b) SELECT i, i * {mult}, lpad(CAST(i AS VARCHAR), {pad}, '0') "
            f"FROM range({start}, {start + n}) r(i)"
        )

    def statement(self, kind):
        if not self.tables or kind == "create_table":
            return self.create_table()
        t = self.table()
        nxt = self.tables[t]["next"]
        lo = self.rng.randint(1, max(1, nxt))
        hi = lo + self.rng.randint(0, 50)
        if kind == "insert_one":
            self.tables[t]["next"] += 1
            return [f"INSERT INTO {t}(id, a, b) VALUES ({nxt}, {self.expr()}, '{'v' * self.rng.randint(0, 40)}')"]
        if kind == "insert_bulk":
            return [self.bulk_rows(t, self.rng.choice(BULK_SIZES), self.rng.randint(1, 9))]
        if kind == "insert_huge":
            return [self.bulk_rows(t, HUGE, self.rng.randint(1, 9))]
        if kind == "update_range":
            return [f"UPDATE {t} SET a = a + {self.expr()}, b = 'u{self.rng.randint(0, 99)}' WHERE id BETWEEN {lo} AND {hi}"]
        if kind == "delete_range":
            return [f"DELETE FROM {t} WHERE id BETWEEN {lo} AND {hi}"]
        if kind == "delete_reinsert":
            n = self.rng.randint(1, 2000)
            lo = self.rng.randint(1, max(1, nxt - n))
            mult = self.rng.randint(2, 9)
            if self.engine == "sqlite":
                ins = (
                    f"INSERT INTO {t}(id, a, b) WITH RECURSIVE r(i) AS (SELECT {lo} UNION ALL SELECT i + 1 "
                    f"FROM r WHERE i < {lo + n - 1}) SELECT i, i * {mult}, 'r' FROM r"
                )
            else:
                ins = f"INSERT INTO {t}(id, a, b) SELECT i, i * {mult}, 'r' FROM range({lo}, {lo + n}) r(i)"
            self.tables[t]["next"] = max(nxt, lo + n)
            return [f"DELETE FROM {t} WHERE id BETWEEN {lo} AND {lo + n - 1}", ins]
        if kind == "upsert":
            k = self.rng.randint(1, nxt)
            self.tables[t]["next"] = max(nxt, k + 1)
            return [
                f"INSERT INTO {t}(id, a, b) VALUES ({k}, {self.expr()}, 'up') "
                f"ON CONFLICT (id) DO UPDATE SET a = excluded.a, b = 'upd'"
            ]
        if kind == "create_index":
            self.n_indexes += 1
            i = f"ix{self.n_indexes}"
            self.indexes[i] = t
            col = self.rng.choice(self.tables[t]["cols"])
            return [f"CREATE INDEX {i} ON {t}({col})"]
        if kind == "drop_index":
            if not self.indexes:
                return []
            i = self.rng.choice(sorted(self.indexes))
            del self.indexes[i]
            return [f"DROP INDEX {i}"]
        if kind == "add_column":
            c = f"c{len(self.tables[t]['cols'])}"
            self.tables[t]["cols"].append(c)
            if self.engine == "sqlite":
                # SQLite refuses a parenthesised default in ADD COLUMN.
                return [f"ALTER TABLE {t} ADD COLUMN {c} INTEGER DEFAULT {self.rng.randint(0, 50)}"]
            # DuckDB binds the default expression again when it replays the WAL.
            if self.rng.random() < 0.5:
                return [f"ALTER TABLE {t} ADD COLUMN {c} INTEGER DEFAULT ({self.expr()})"]
            return [f"ALTER TABLE {t} ADD COLUMN {c} VARCHAR DEFAULT concat('x', '{'y' * self.rng.randint(0, 9)}')"]
        if kind == "alter_type":
            if self.engine == "sqlite":
                return []  # SQLite has no ALTER COLUMN ... TYPE
            ty = self.rng.choice(["BIGINT", "INTEGER"])
            return [f"ALTER TABLE {t} ALTER COLUMN a SET TYPE {ty} USING (a + length('{'z' * self.rng.randint(0, 3)}') * 0)"]
        if kind == "drop_table":
            if len(self.tables) < 2:
                return []
            del self.tables[t]
            for i in [i for i, tt in self.indexes.items() if tt == t]:
                del self.indexes[i]
            return [f"DROP TABLE {t}"]
        if kind == "savepoint" and self.engine == "sqlite":
            return [
                "SAVEPOINT s1",
                f"DELETE FROM {t} WHERE id BETWEEN {lo} AND {hi}",
                "ROLLBACK TO s1",
                "RELEASE s1",
            ]
        return []

    def program(self, n_tx):
        txs, maint = [], []
        for _ in range(n_tx):
            stmts = []
            for _ in range(self.rng.randint(1, 4)):
                stmts += self.statement(pick(self.rng, WEIGHTS))
            txs.append(stmts)
            m = pick(self.rng, MAINTENANCE)
            if m == "vacuum" and self.engine == "duckdb":
                m = "checkpoint"
            maint.append(m)
        return txs, maint


def connect(engine, db):
    if engine == "sqlite":
        import sqlite3

        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        # Durable at commit: the oracle may hold every acknowledged commit to it.
        c.execute("PRAGMA synchronous=FULL")
        return c
    import duckdb

    return duckdb.connect(db)


def execute(engine, con, sql):
    con.execute(sql)


def maintain(engine, con, m):
    if m == "checkpoint":
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)" if engine == "sqlite" else "CHECKPOINT")
    elif m == "vacuum":
        con.execute("VACUUM")


def apply_tx(engine, con, k, stmts):
    con.execute("BEGIN")
    for s in stmts:
        con.execute(s)
    con.execute(f"INSERT INTO hunt_acks VALUES ({k})")
    con.execute("COMMIT")


def user_tables(engine, con):
    if engine == "sqlite":
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetchall()
    else:
        rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
    return sorted(r[0] for r in rows)


def content_hash(engine, con):
    """Per table, sha256 of its sorted rows; one hash of them all (with table names)."""
    h = hashlib.sha256()
    for t in user_tables(engine, con):
        # Every table has a primary key (`id`, or `k` for hunt_acks): its order is the content's.
        key = "k" if t == "hunt_acks" else "id"
        h.update(t.encode())
        cur = con.execute(f"SELECT * FROM {t} ORDER BY {key}")
        while True:
            rows = cur.fetchmany(10000)
            if not rows:
                break
            h.update(repr(rows).encode())
    return h.hexdigest()


def load(path):
    with open(path) as f:
        return json.load(f)


def cmd_gen(args):
    engine, seed, weights = "sqlite", 0, None
    n_tx = 12
    while args:
        a = args.pop(0)
        if a == "--engine":
            engine = args.pop(0)
        elif a == "--seed":
            seed = int(args.pop(0))
        elif a == "--weights":
            weights = args.pop(0)
        elif a == "--transactions":
            n_tx = int(args.pop(0))
        else:
            sys.exit(f"hunt.py gen: unknown option {a}")
    if engine not in ENGINES:
        sys.exit(f"hunt.py gen: --engine is one of {', '.join(ENGINES)}")
    if weights:
        load_weights(weights)
    g = Gen(engine, seed)
    txs, maint = g.program(n_tx)
    json.dump({"engine": engine, "seed": seed, "transactions": txs, "maintenance": maint}, sys.stdout, indent=1)
    print()


def cmd_validate(args):
    """Runs the program once on a fresh database; a statement the engine rejects is dropped (the
    transaction is retried without it); writes the valid program with its model hashes."""
    src, out = args
    p = load(src)
    engine = p["engine"]
    import tempfile

    d = tempfile.mkdtemp(prefix="hunt-validate-")
    db = os.path.join(d, "model.db")
    con = connect(engine, db)
    con.execute("CREATE TABLE hunt_acks(k INTEGER PRIMARY KEY)")
    model = [content_hash(engine, con)]
    txs, maint, dropped = [], [], 0
    for stmts, m in zip(p["transactions"], p["maintenance"]):
        kept = []
        for s in stmts:
            try:
                con.execute("BEGIN")
                for k in kept:
                    con.execute(k)
                con.execute(s)
                con.execute("ROLLBACK")
                kept.append(s)
            except Exception:
                dropped += 1
                try:
                    con.execute("ROLLBACK")
                except Exception:
                    pass
        if not kept:
            continue
        k = len(txs) + 1
        # A COMMIT the engine refuses (DuckDB: a table altered and then modified in one
        # transaction) rolls the whole transaction back: drop its last statement and try again.
        while kept:
            try:
                apply_tx(engine, con, k, kept)
                break
            except Exception:
                try:
                    con.execute("ROLLBACK")
                except Exception:
                    pass
                kept.pop()
                dropped += 1
        if not kept:
            continue
        txs.append(kept)
        try:
            maintain(engine, con, m)
        except Exception:
            m = "none"
        maint.append(m)
        model.append(content_hash(engine, con))
    con.close()
    p.update({"transactions": txs, "maintenance": maint, "model": model, "dropped": dropped})
    with open(out, "w") as f:
        json.dump(p, f, indent=1)
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def cmd_run(args):
    src, db = args
    p = load(src)
    engine = p["engine"]
    con = connect(engine, db)
    if engine == "duckdb":
        import duckdb

        print(f"sqlite_version duckdb {duckdb.__version__}", flush=True)
    else:
        print("journal_mode wal", flush=True)
        print("synchronous full", flush=True)
    con.execute("CREATE TABLE IF NOT EXISTS hunt_acks(k INTEGER PRIMARY KEY)")
    # The hunt's positive control: a driver that acknowledges each transaction before its COMMIT
    # (a liar), which the lab must catch and the shrinker reduce to one statement.
    early = os.environ.get("TORTURE_HUNT_CONTROL") == "ack-before-commit"
    for k, (stmts, m) in enumerate(zip(p["transactions"], p["maintenance"]), start=1):
        if early:
            con.execute("BEGIN")
            for s in stmts:
                con.execute(s)
            con.execute(f"INSERT INTO hunt_acks VALUES ({k})")
            print(f"ack {k}", flush=True)
            con.execute("COMMIT")
        else:
            apply_tx(engine, con, k, stmts)
            print(f"ack {k}", flush=True)
        maintain(engine, con, m)
    con.close()


def check(p, db, acked=0, integrity=False):
    """None when consistent, else one line saying what is wrong. `acked`: commits 1..acked were
    acknowledged before the crash; `integrity`: run SQLite's integrity_check. (Under the lab both
    are the lab's own checks, beside this one; a reproduction needs them here.)"""
    engine = p["engine"]
    try:
        if engine == "sqlite":
            import sqlite3

            con = sqlite3.connect(db, isolation_level=None)
            ic = con.execute("PRAGMA integrity_check").fetchall() if integrity else [("ok",)]
            if ic != [("ok",)]:
                return f"integrity_check: {ic[:3]}"
        else:
            import duckdb

            con = duckdb.connect(db)
        if "hunt_acks" not in user_tables(engine, con):
            if acked:
                return f"acknowledged commits 1..{acked} are missing: no hunt_acks table"
            return None  # cut before the program made its first table: nothing committed
        have = {r[0] for r in con.execute("SELECT k FROM hunt_acks").fetchall()}
        missing = [k for k in range(1, acked + 1) if k not in have]
        if missing:
            return f"acknowledged commits missing: {missing[:10]} of 1..{acked}"
        # Index consistency: each sampled key found by a point lookup (primary-key index) is
        # found by a scan, and the counts agree.
        for t in user_tables(engine, con):
            ids = [r[0] for r in con.execute(f"SELECT id FROM {t}").fetchall()] if t != "hunt_acks" else []
            for k in ids[:: max(1, len(ids) // 16)][:32]:
                n = con.execute(f"SELECT count(*) FROM {t} WHERE id = {k}").fetchone()[0]
                if n != 1:
                    return f"index: {t} id={k}: a scan finds it, a lookup by key finds {n}"
        h = content_hash(engine, con)
    except Exception as e:
        return f"cannot read the database: {type(e).__name__}: {e}"
    if h not in p["model"]:
        return "prefix consistency: the recovered content equals no prefix of the committed transactions"
    return None


def cmd_oracle(args):
    src, db = args
    bad = check(load(src), db)
    if bad:
        print(bad, file=sys.stderr)
        sys.exit(1)


def cmd_repro(args):
    """Exit 1: the bug reproduces; 0: it does not; 3: nothing could be checked."""
    try:
        repro(args)
    except SystemExit:
        raise
    except Exception as e:
        print(f"hunt.py repro: could not check: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3)


def repro(args):
    acked = 0
    if "--acked" in args:
        i = args.index("--acked")
        acked = int(args[i + 1])
        del args[i : i + 2]
    src, state = args
    p = load(src)
    if not os.path.isdir(state):
        print(f"hunt.py repro: no saved state at {state}", file=sys.stderr)
        sys.exit(3)
    names = [n for n in os.listdir(state) if not n.endswith(("-wal", "-shm", "-journal", ".wal"))]
    if len(names) != 1:
        print(f"hunt.py repro: expected one database file in {state}, found {names}", file=sys.stderr)
        sys.exit(3)
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="hunt-repro-")
    for n in os.listdir(state):
        shutil.copy(os.path.join(state, n), d)
    bad = check(p, os.path.join(d, names[0]), acked, integrity=True)
    print(bad or "consistent: the bug did not reproduce on this engine")
    sys.exit(1 if bad else 0)


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, rest = argv[0], argv[1:]
    {"gen": cmd_gen, "validate": cmd_validate, "run": cmd_run, "oracle": cmd_oracle, "repro": cmd_repro}.get(
        cmd, lambda _: sys.exit(f"hunt.py: unknown command {cmd}")
    )(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
