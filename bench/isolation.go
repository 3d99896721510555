package main

import (
	"context"
	"fmt"
	"time"
)

func isolation(c *config, st *stack, s *site) error {
	n := min(c.urls, 1000)
	alone, _, err := durable(st, s.smallURLs(n, "iso-alone"), c.inFlight)
	if err != nil {
		return err
	}
	// The load: large bodies, fetched first while their CPU queue has no
	// worker, then hashed by a CPU pool of the default size while the
	// same small batch runs again.
	ctx := context.Background()
	load, stopPool, err := prefetched(st, s.largeURLs(c.loadBodies, c.loadSize, "iso-load"), "bench-iso-cpu")
	if err != nil {
		return err
	}
	defer stopPool()
	for !hashing(st, load) {
		time.Sleep(10 * time.Millisecond) // polling the server's view
	}
	loaded, _, err := durable(st, s.smallURLs(n, "iso-loaded"), c.inFlight)
	if err != nil {
		return err
	}
	stillHashing := hashing(st, load)
	if err := load.Get(ctx, nil); err != nil {
		return err
	}
	a, l := fetchLatencies(alone), fetchLatencies(loaded)
	a50, a99, l50, l99 := percentile(a, .5), percentile(a, .99), percentile(l, .5), percentile(l, .99)
	fmt.Printf("\n== isolation: %d small fetches (%v latency), alone and while a CPU pool of %d slots hashes %d x %d MiB bodies\n",
		n, c.latency, slotsOf(st.cfg), c.loadBodies, c.loadSize>>20)
	fmt.Printf("fetch latency alone        p50 %4d ms  p99 %4d ms\n", a50, a99)
	fmt.Printf("fetch latency under load   p50 %4d ms  p99 %4d ms  (still hashing when the batch ended: %v)\n", l50, l99, stillHashing)
	fmt.Printf("p99 ratio loaded/alone     %.2f\n", float64(l99)/float64(max(a99, 1)))
	return nil
}
