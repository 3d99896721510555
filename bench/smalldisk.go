package main

import (
	"fmt"
	"time"
)

// smalldisk fetches 40 bodies of 4 MiB, 4 at a time, on a worker process
// of its own (default flags) whose blob directory is a tmpfs of 64 MiB:
// at most 16 MiB is ever being fetched, so every body fits if the disk
// holds only the work in flight.
func smalldisk(c *config, st *stack, s *site) error {
	const bodies, size, inFlight, disk = 40, 4 << 20, 4, 64 << 20
	fmt.Printf("\n== smalldisk: %d bodies of %s, %d in flight, blobs on a tmpfs of %s\n", bodies, mib(size), inFlight, mib(disk))
	o, scratch, err := onSmallDisk(c, st, s, "smalldisk", disk, s.largeURLs(bodies, size, "smalldisk"), inFlight, false)
	if err != nil {
		return skipped(err)
	}
	switch {
	case o.err != nil:
		fmt.Printf("batch failed: %v\n  the worker's last words:\n%s", o.err, o.log)
	case o.failed > 0:
		fmt.Printf("%d of %d failed (%d ok) in %v: %v\n", o.failed, bodies, o.ok, o.wall.Round(time.Millisecond), o.errs)
	default:
		fmt.Printf("%d of %d ok in %v\n", o.ok, bodies, o.wall.Round(time.Millisecond))
	}
	fmt.Printf("peak scratch %s of %s (%s in use before the batch); worker peak RSS (VmHWM) %s\n", mib(scratch.peak), mib(disk), mib(scratch.start), mib(o.hwm))
	return nil
}
