#!/bin/sh
# The sqlite3 command-line shell fed a script, for `torture exec`:
#
#   torture exec --recovered-sql 'SELECT max(seq) FROM t' --verify-sql "$(cat workloads/exec/verify.sql)" \
#       -- sh workloads/exec/sqlite3_cli_writer.sh {db}
#
# Writes the script next to the database (settings and schema from sqlite3_cli_writer.sql, then COMMITS
# transactions of 1-8 rows and a transfer between two accounts, each followed by `SELECT 'ack N'`),
# then *replaces itself* with sqlite3 (exec), so the CLI is the very process the lab started and dies
# with it. The CLI prints each result and flushes stdout after every statement, so `ack N` reaches the
# lab as soon as COMMIT N returned.
# Usage: sqlite3_cli_writer.sh [DB] [COMMITS]   (DB defaults to $TORTURE_DB, COMMITS to 2000)
set -eu
db="${1:-${TORTURE_DB:?give the database path}}"
commits="${2:-2000}"
here=$(dirname "$0")
script="$db.sql"
{
  cat "$here/sqlite3_cli_writer.sql"
  # Continue after the commits a seeded database (--seed-db) already holds.
  start=$(sqlite3 "$db" 'SELECT coalesce(max(seq), 0) FROM t' 2>/dev/null || echo 0)
  awk -v start="$start" -v n="$commits" 'BEGIN {
    srand(start + n)
    for (i = start + 1; i <= start + n; i++) {
      rows = 1 + int(rand() * 8)
      printf "BEGIN;\n"
      printf "WITH RECURSIVE r(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM r WHERE k < %d) ", rows
      printf "INSERT INTO item(seq, payload) SELECT %d, randomblob(8 + abs(random()) %% 3000) FROM r;\n", i
      printf "INSERT INTO t(seq, rows) VALUES (%d, %d);\n", i, rows
      printf "UPDATE counter SET items = items + %d WHERE id = 0;\n", rows
      amount = 1 + int(rand() * 50)
      printf "UPDATE account SET balance = balance - %d WHERE id = %d;\n", amount, 1 + int(rand() * 1000)
      printf "UPDATE account SET balance = balance + %d WHERE id = %d;\n", amount, 1 + int(rand() * 1000)
      printf "COMMIT;\nSELECT '\''ack %d'\'';\n", i
    }
  }'
} > "$script"
exec sqlite3 "$db" < "$script"
