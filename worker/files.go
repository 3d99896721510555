package main

import "fmt"

// filesPerSlot is the files a fetch slot may hold open: its connection,
// and its body's blob while it reads.
const filesPerSlot = 2

// filesSpare are the files the rest of the worker holds (the Temporal
// connection, the pack files, the log, the listeners).
const filesSpare = 256

// filesWarning says when the process may open too few files for its fetch
// slots (limit: its RLIMIT_NOFILE, which Go raises to the hard limit at
// start), or "" when it may open enough. Past the limit, dials fail with
// "too many open files" and URLs retry for nothing.
func filesWarning(fetchSlots int, limit uint64) string {
	need := uint64(fetchSlots)*filesPerSlot + filesSpare
	if limit >= need {
		return ""
	}
	return fmt.Sprintf("this process may open %d files, and %d fetch slots may need %d: raise the limit (ulimit -n, or the container's nofile ulimit) or lower --fetch-slots to %d",
		limit, fetchSlots, need, max(1, (int(limit)-filesSpare)/filesPerSlot))
}
