#!/bin/sh
# The measured table of docs/exec.md, redone from real runs: `sh workloads/exec/measure.sh [OUT]`.
# Needs python3 (sqlite3 module) and the sqlite3 shell. Each line prints the run's exit code and
# its counts; the folders stay in OUT (default: results/exec-measure) for `torture report`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
torture=${TORTURE:-$here/../../target/release/torture}
out=${1:-results/exec-measure}
n=${N:-40}
w="$here/python_writer.py"
verify=$(cat "$here/verify.sql")
rm -rf "$out"; mkdir -p "$out"
run() { # name, then exec's arguments
  name=$1; shift
  nice "$torture" exec --no-progress --out "$out/$name" "$@" > "$out/$name.txt" 2>&1
  code=$?
  printf '%-14s exit %s  ' "$name" "$code"
  python3 -c 'import collections, csv, sys
try:
    rows = list(csv.DictReader(open(sys.argv[1])))
except OSError:
    rows = []
print(" ".join(f"{k}={v}" for k, v in sorted(collections.Counter(r["outcome"] for r in rows).items())),
      "| acked>0:", sum(int(r["acked_commits"]) > 0 for r in rows))' "$out/$name/trials.csv"
}
# 1. Negative control: WAL + FULL, every surviving seq checked, the invariant.
run wal-full -n "$n" --seed 1 --recovered-sql 'SELECT seq FROM t' --verify-sql "$verify" -- python3 "$w" {db}
# 2. A lost commit that is not the newest (a swallowed failed COMMIT every 7th transaction):
#    invisible to "the highest", caught by the set check.
run drop-max -n "$n" --seed 2 --recovered-sql 'SELECT max(seq) FROM t' -- python3 "$w" {db} --forever --drop-every 7
run drop-set -n "$n" --seed 2 --recovered-sql 'SELECT seq FROM t' -- python3 "$w" {db} --forever --drop-every 7
# 3. A never-exiting journal_mode=OFF writer (the issue's refused case): caught, not refused.
for s in 1 2 3; do
  run off-forever-$s -n "$n" --seed "$s" --recovered-sql 'SELECT max(seq) FROM t' --verify-sql "$verify" -- \
    python3 "$w" {db} --forever --journal-mode off --synchronous off --transfers 30 --cache-size 8
done
# 4. Four instances on one database, WAL + FULL, every instance's acks checked.
run instances-4 -n "$n" --seed 4 --instances 4 --keep-evidence --recovered-sql 'SELECT seq FROM t' \
  --verify-sql "$verify" -- python3 "$w" {db} --forever
run kill-one -n "$n" --seed 5 --instances 4 --kill one --recovered-sql 'SELECT seq FROM t' \
  --verify-sql "$verify" -- python3 "$w" {db} --forever
# 5. The sqlite3 shell in a pipeline (a grandchild of the lab), every trial's files kept and re-checked.
run pipeline -n "$n" --seed 6 --shell --keep-evidence --recovered-sql 'SELECT max(seq) FROM t' \
  --verify-sql "$verify" -- "sh '$here/sqlite3_cli_writer.sh' \"\$TORTURE_DB\" 4000 | cat"
confirmed=0; total=0
for f in "$out"/pipeline/evidence/* "$out"/pipeline/failures/*; do
  [ -d "$f" ] || continue
  total=$((total + 1))
  "$torture" replay "$f" > /dev/null 2>&1 && confirmed=$((confirmed + 1))
done
echo "pipeline re-checked: $confirmed of $total verdicts confirmed by their saved files"
# 6. Kill after K acknowledged commits; a slow program (4 commits/s) covered to its end.
run kill-after-k -n "$n" --seed 7 --kill-after 1..20 --recovered-sql 'SELECT max(seq) FROM t' -- python3 "$w" {db}
run slow -n 20 --seed 8 --recovered-sql 'SELECT max(seq) FROM t' -- python3 "$w" {db} --pace 0.25 --commits 40
# 7. Positive control: ack before COMMIT.
run lie -n "$n" --seed 9 --recovered-sql 'SELECT max(seq) FROM t' -- python3 "$w" {db} --lie --journal-mode delete --rows 20..40
