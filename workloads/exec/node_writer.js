#!/usr/bin/env node
// An application on Node's better-sqlite3 (npm `better-sqlite3`, its own bundled SQLite), for
// `torture exec`: the same schema and transactions as python_writer.py, so workloads/exec/verify.sql
// checks it. After COMMIT of transaction N returned it prints `ack N` (process.stdout to a pipe is
// synchronous on Linux: the line has left when the call returns). It also prints `journal_mode X`,
// `synchronous X` and `sqlite_version V`, read back from SQLite.
//
//     npm install better-sqlite3
//     torture exec --recovered-sql 'SELECT seq FROM t' --verify-sql "$(cat workloads/exec/verify.sql)" \
//         -- node workloads/exec/node_writer.js {db}
//
// Options: --commits N (default 2000), --journal-mode M (wal), --synchronous S (full),
// --transfers K (2), --cache-size N, --lie (ack before COMMIT: the positive control).
// With --instances N, instance I numbers its commits from I * 1000000000 + 1.
"use strict";
const Database = require("better-sqlite3");

const opts = { commits: "2000", "journal-mode": "wal", synchronous: "full", transfers: "2", "cache-size": null };
let db = process.env.TORTURE_DB;
let lie = false;
const args = process.argv.slice(2);
while (args.length) {
  const a = args.shift();
  if (a === "--lie") lie = true;
  else if (a.startsWith("--") && a.slice(2) in opts) opts[a.slice(2)] = args.shift();
  else if (!a.startsWith("--")) db = a;
  else { console.error(`node_writer.js: unknown option ${a}`); process.exit(2); }
}
if (!db) { console.error("node_writer.js: give the database path (argument or TORTURE_DB)"); process.exit(2); }

// A small seeded generator (xorshift), so a trial's seed gives the same writes.
let state = BigInt(process.env.TORTURE_SEED || "1") | 1n;
function rand(lo, hi) {
  state ^= (state << 13n) & 0xffffffffffffffffn;
  state ^= state >> 7n;
  state ^= (state << 17n) & 0xffffffffffffffffn;
  return lo + Number(state % BigInt(hi - lo + 1));
}

const con = new Database(db, { timeout: 30000 });
const mode = con.pragma(`journal_mode=${opts["journal-mode"]}`, { simple: true });
con.pragma(`synchronous=${opts.synchronous}`);
const sync = con.pragma("synchronous", { simple: true });
if (opts["cache-size"] !== null) con.pragma(`cache_size=${parseInt(opts["cache-size"], 10)}`);
const say = (line) => process.stdout.write(line + "\n");
say(`sqlite_version ${con.prepare("SELECT sqlite_version()").pluck().get()}`);
say(`journal_mode ${mode}`);
say(`synchronous ${["off", "normal", "full", "extra"][sync]}`);
con.exec(`
  BEGIN IMMEDIATE;
  CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS item(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB);
  CREATE INDEX IF NOT EXISTS item_seq ON item(seq);
  CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY CHECK (id = 0), items INTEGER NOT NULL);
  INSERT OR IGNORE INTO counter VALUES (0, 0);
  CREATE TABLE IF NOT EXISTS account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB);
  INSERT OR IGNORE INTO account
    WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < 1000)
    SELECT i, 100, zeroblob(400) FROM a;
  COMMIT;
`);
const base = parseInt(process.env.TORTURE_INSTANCE || "0", 10) * 1000000000;
const start =
  con.prepare("SELECT coalesce(max(seq), ?) FROM t WHERE seq BETWEEN ? AND ?").pluck().get(base, base, base + 999999999) + 1;
const insItem = con.prepare("INSERT INTO item(seq, payload) VALUES (?, ?)");
const insT = con.prepare("INSERT INTO t(seq, rows) VALUES (?, ?)");
const bump = con.prepare("UPDATE counter SET items = items + ? WHERE id = 0");
const move = con.prepare("UPDATE account SET balance = balance + ? WHERE id = ?");
const commit = con.transaction((seq, n) => {
  for (let i = 0; i < n; i++) insItem.run(seq, Buffer.alloc(rand(8, 3000), seq % 251));
  insT.run(seq, n);
  bump.run(n);
  for (let k = 0; k < parseInt(opts.transfers, 10); k++) {
    const amount = rand(1, 50);
    move.run(-amount, rand(1, 1000));
    move.run(amount, rand(1, 1000));
  }
});
const commits = parseInt(opts.commits, 10);
for (let seq = start; seq < start + commits; seq++) {
  if (lie) say(`ack ${seq}`);
  commit.immediate(seq, rand(1, 8));
  if (!lie) say(`ack ${seq}`);
}
con.close();
