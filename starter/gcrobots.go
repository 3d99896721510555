package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// robotsRecordsDir is where the fetch workers of a blob directory share
// what each origin's robots.txt says (activities.RobotsKey): one record
// per origin, rewritten each time it is fetched again and trusted an hour
// at most, so a record not written for longer is of no use.
const robotsRecordsDir = "robots"

// sweepRobots removes (or, dry, lists on stdout) the robots.txt records of
// dir not written since cutoff, and says what it did: a batch over many
// hosts leaves one for each.
func sweepRobots(dir string, cutoff time.Time, dry bool, stdout, stderr io.Writer) error {
	root := filepath.Join(dir, robotsRecordsDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	n, size := 0, int64(0)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), blobstore.HiddenPrefix) {
			continue // a record is a file of its own; a write under way is hidden
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // rewritten meanwhile
		}
		if err != nil {
			return err
		}
		if !info.ModTime().Before(cutoff) {
			continue
		}
		p := filepath.Join(root, e.Name())
		if dry {
			fmt.Fprintln(stdout, p)
		} else if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		n++
		size += info.Size()
	}
	verb := "removed"
	if dry {
		verb = "would remove"
	}
	fmt.Fprintf(stderr, "%s %d robots.txt records (%d bytes) not written since %s from %s\n", verb, n, size, cutoff.UTC().Format(time.RFC3339), root)
	return nil
}
