-- The start of the script the sqlite3 command-line shell is fed by sqlite3_cli_writer.sh: settings and
-- schema. The shell script appends the transactions, each followed by `SELECT 'ack N'`, which the shell
-- prints (and flushes) only after COMMIT returned. Same schema as python_writer.py, so verify.sql works.
.bail on
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
SELECT 'journal_mode ' || journal_mode FROM pragma_journal_mode;
SELECT 'synchronous ' || CASE synchronous WHEN 0 THEN 'off' WHEN 1 THEN 'normal' WHEN 2 THEN 'full' ELSE 'extra' END FROM pragma_synchronous;
SELECT 'sqlite_version ' || sqlite_version();
BEGIN;
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
