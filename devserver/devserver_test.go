package devserver_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/batchfetch/batchfetch/devserver"
	"github.com/batchfetch/batchfetch/internal/freeport"
)

// TestDatabaseFileIsWriteAheadLogged: the dev server's SQLite file runs in
// WAL mode. In SQLite's default rollback-journal mode with full sync,
// every commit of the server (several per activity) syncs the disk
// several times, which made the server the slowest part of a batch.
func TestDatabaseFileIsWriteAheadLogged(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dev.sqlite")
	s, err := devserver.Start(devserver.Config{DBFile: db, Port: freeport.Run(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mode string
	if err := conn.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode of %s is %q, want wal", db, mode)
	}
}

// Two dev servers on one database file would corrupt each other's state:
// the second refuses to start, saying which file and who holds it, and
// the file is free again once the first stops.
func TestASecondServerOnTheSameDatabaseRefusesToStart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "not-yet", "dev.sqlite") // a first start: no directory yet
	first, err := devserver.Start(devserver.Config{DBFile: db, Port: freeport.Run(t, 8)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = devserver.Start(devserver.Config{DBFile: db, Port: freeport.Run(t, 8)})
	if err == nil || !strings.Contains(err.Error(), "in use by another dev server (pid "+strconv.Itoa(os.Getpid())+")") || !strings.Contains(err.Error(), db) {
		t.Fatalf("second server on %s: err = %v, want it refused, naming the file and the pid", db, err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	again, err := devserver.Start(devserver.Config{DBFile: db, Port: freeport.Run(t, 8)})
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	_ = again.Stop()
}
