// An application in Go that reaches SQLite through cgo (the system's libsqlite3, as
// mattn/go-sqlite3 would bundle its own), for `torture exec`: the same schema and transactions as
// python_writer.py, so workloads/exec/verify.sql checks it. It needs no module download:
//
//	apt-get install golang-go libsqlite3-dev
//	go build -o go_writer workloads/exec/go_writer/main.go
//	torture exec --recovered-sql 'SELECT seq FROM t' --verify-sql "$(cat workloads/exec/verify.sql)" \
//	    --fault power-loss -- ./go_writer {db}
//
// SQLite's file I/O goes through libc, so the recorder sees it; the `ack N` lines go through Go's
// own runtime (fmt.Printf on os.Stdout, unbuffered, no libc), which the recorder cannot see: the
// lab places them in the order when it reads them.
//
// Options: --commits N (default 2000), --journal-mode M (wal), --synchronous S (full), --lie.
package main

/*
#cgo LDFLAGS: -lsqlite3
#include <sqlite3.h>
#include <stdlib.h>

static int exec_sql(sqlite3 *db, const char *sql) { return sqlite3_exec(db, sql, 0, 0, 0); }

static const char *text_of(sqlite3 *db, const char *sql) {
	static char buf[64];
	sqlite3_stmt *st;
	buf[0] = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, 0) != SQLITE_OK) return buf;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		sqlite3_snprintf(sizeof buf, buf, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"unsafe"
)

func must(db *C.sqlite3, sql string) {
	cs := C.CString(sql)
	defer C.free(unsafe.Pointer(cs))
	if rc := C.exec_sql(db, cs); rc != C.SQLITE_OK {
		fmt.Fprintf(os.Stderr, "go_writer: %s: %s\n", sql, C.GoString(C.sqlite3_errmsg(db)))
		os.Exit(1)
	}
}

func text(db *C.sqlite3, sql string) string {
	cs := C.CString(sql)
	defer C.free(unsafe.Pointer(cs))
	return C.GoString(C.text_of(db, cs))
}

func main() {
	path := os.Getenv("TORTURE_DB")
	commits, mode, sync, lie := 2000, "wal", "full", false
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--commits":
			i++
			commits, _ = strconv.Atoi(args[i])
		case "--journal-mode":
			i++
			mode = args[i]
		case "--synchronous":
			i++
			sync = args[i]
		case "--lie":
			lie = true
		default:
			if len(a) > 1 && a[:2] == "--" {
				fmt.Fprintf(os.Stderr, "go_writer: unknown option %s\n", a)
				os.Exit(2)
			}
			path = a
		}
	}
	if path == "" {
		fmt.Fprintln(os.Stderr, "go_writer: give the database path (argument or TORTURE_DB)")
		os.Exit(2)
	}
	var db *C.sqlite3
	cpath := C.CString(path)
	if rc := C.sqlite3_open(cpath, &db); rc != C.SQLITE_OK {
		fmt.Fprintf(os.Stderr, "go_writer: open %s failed (%d)\n", path, int(rc))
		os.Exit(1)
	}
	C.sqlite3_busy_timeout(db, 30000)
	fmt.Printf("sqlite_version %s\n", C.GoString(C.sqlite3_libversion()))
	fmt.Printf("journal_mode %s\n", text(db, "PRAGMA journal_mode="+mode))
	must(db, "PRAGMA synchronous="+sync)
	levels := []string{"off", "normal", "full", "extra"}
	if n, err := strconv.Atoi(text(db, "PRAGMA synchronous")); err == nil && n >= 0 && n < 4 {
		fmt.Printf("synchronous %s\n", levels[n])
	}
	must(db, `BEGIN IMMEDIATE;
	  CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, rows INTEGER NOT NULL);
	  CREATE TABLE IF NOT EXISTS item(id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB);
	  CREATE INDEX IF NOT EXISTS item_seq ON item(seq);
	  CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY CHECK (id = 0), items INTEGER NOT NULL);
	  INSERT OR IGNORE INTO counter VALUES (0, 0);
	  CREATE TABLE IF NOT EXISTS account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, pad BLOB);
	  INSERT OR IGNORE INTO account
	    WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < 1000)
	    SELECT i, 100, zeroblob(400) FROM a;
	  COMMIT;`)
	base := 0
	if s := os.Getenv("TORTURE_INSTANCE"); s != "" {
		i, _ := strconv.Atoi(s)
		base = i * 1000000000
	}
	start, _ := strconv.Atoi(text(db, fmt.Sprintf("SELECT coalesce(max(seq), %d) FROM t WHERE seq BETWEEN %d AND %d", base, base, base+999999999)))
	state := uint64(1)
	if s, err := strconv.ParseUint(os.Getenv("TORTURE_SEED"), 10, 64); err == nil {
		state = s | 1
	}
	rand := func(lo, hi int) int {
		state ^= state << 13
		state ^= state >> 7
		state ^= state << 17
		return lo + int(state%uint64(hi-lo+1))
	}
	for seq := start + 1; seq <= start+commits; seq++ {
		if lie {
			fmt.Printf("ack %d\n", seq)
		}
		n := rand(1, 8)
		sql := "BEGIN IMMEDIATE;"
		for i := 0; i < n; i++ {
			sql += fmt.Sprintf("INSERT INTO item(seq, payload) VALUES (%d, randomblob(%d));", seq, rand(8, 3000))
		}
		sql += fmt.Sprintf("INSERT INTO t(seq, rows) VALUES (%d, %d);", seq, n)
		sql += fmt.Sprintf("UPDATE counter SET items = items + %d WHERE id = 0;", n)
		for k := 0; k < 2; k++ {
			amount := rand(1, 50)
			sql += fmt.Sprintf("UPDATE account SET balance = balance - %d WHERE id = %d;", amount, rand(1, 1000))
			sql += fmt.Sprintf("UPDATE account SET balance = balance + %d WHERE id = %d;", amount, rand(1, 1000))
		}
		must(db, sql+"COMMIT;")
		if !lie {
			fmt.Printf("ack %d\n", seq)
		}
	}
	C.sqlite3_close(db)
}
