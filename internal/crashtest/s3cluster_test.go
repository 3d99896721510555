//go:build cluster

// The production shape with workers on machines of their own: the blob
// store is a bucket on a real S3 server, and no two workers share a disk.
// Run with
//
//	go test -tags cluster -run TestS3 -v -timeout 30m ./internal/crashtest
package crashtest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
)

// s3Blobs is a rig's blob store when its workers share no disk: a bucket
// on an S3 server listening on 127.0.0.1. The workers on the host reach it
// there, fetch worker B (in the namespace) through a forwarder on the host
// side of its link, and CPU worker 1 through a proxy the test can
// blackhole, which leaves its way to Temporal alone.
type s3Blobs struct {
	srv     *s3test.Server
	forward *tcpProxy // on hostAddr, never cut
	cpu1    *tcpProxy // on 127.0.0.1
}

func newS3Blobs(t *testing.T) *s3Blobs {
	srv := s3test.Start(t)
	return &s3Blobs{srv: srv, forward: newTCPProxy(t, hostAddr+":0", srv.Addr), cpu1: newTCPProxy(t, "127.0.0.1:0", srv.Addr)}
}

// nsEndpoint is where fetch worker B reaches the S3 server ("" for a rig
// without one).
func (s *s3Blobs) nsEndpoint() string {
	if s == nil {
		return ""
	}
	return s.forward.Addr()
}

// cpu1Endpoint is where CPU worker 1 reaches the S3 server.
func (s *s3Blobs) cpu1Endpoint() string {
	if s == nil {
		return ""
	}
	return s.cpu1.Addr()
}

// open reads key from the bucket, as an operator's S3 client does.
func (s *s3Blobs) open(t *testing.T, ctx context.Context, key string) io.ReadCloser {
	t.Helper()
	out, err := s.srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s3test.Bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("reading %s from the bucket: %v", key, err)
	}
	return out.Body
}

// leftObjects is what of keys (the bucket's) is not a results file (results)
// and what stays there by design: the store's identity (written once,
// read by every worker and the starter) and the fetch workers' membership
// records (workers/<queue>/<worker>: each holds the time it stops
// counting; a worker that stops removes its own, one killed leaves it for
// the others to remove once expired). Every other key is an object or an
// unfinished multipart upload ("upload:<key>") something forgot: a body,
// a batch's scratch (batches/), its uploaded URL list (inputs/). Robots
// records (robots/) and kept bodies (bodies/) would be legitimate, but
// the test's batches neither obey robots.txt nor keep bodies.
func (s *s3Blobs) leftObjects(t *testing.T, keys []string, results map[string]bool) (left []string, members int) {
	t.Helper()
	for _, k := range keys {
		switch {
		case results[k] || k == blobstore.IDKey:
		case strings.HasPrefix(k, "workers/") && s.expires(t, k):
			members++
		default:
			left = append(left, k)
		}
	}
	return left, members
}

// expires tells whether the object at key is a membership record: the
// time (Unix nanoseconds) until which it counts, within the hour.
func (s *s3Blobs) expires(t *testing.T, key string) bool {
	r := s.open(t, context.Background(), key)
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && time.Unix(0, ns).Before(time.Now().Add(time.Hour))
}

func requestsSince(now, then map[string]int64) (by map[string]int64, total int64) {
	by = map[string]int64{}
	for k, v := range now {
		if d := v - then[k]; d > 0 {
			by[k] = d
			total += d
		}
	}
	return by, total
}

// TestS3ClusterNoSharedDisk runs a 100,000-URL batch on the production
// shape with the blobs in S3 and every worker on a disk of its own; mid-
// batch it SIGKILLs fetch worker A and restarts it, then partitions CPU
// worker 1 from S3 (not from Temporal) for 30 s. Every URL must come back
// exactly once with the right sha256, the batch must advance during the
// partition, and the bucket must hold nothing of the batch but its
// results file.
func TestS3ClusterNoSharedDisk(t *testing.T) {
	const big = 100_000
	c := newClusterRig(t, s3Bucket)
	site := clusterSite(t)

	objectsBefore := len(c.s3.srv.Keys(t, s3test.Bucket))
	requestsBefore := c.s3.srv.Requests(t)
	start := time.Now()
	c.startBatch("s3-big", site, 0, big)

	c.waitDone("s3-big", big/10)
	fetchedByA := c.scrape(c.fetchA, "batchfetch_fetch_bytes_total")
	t.Logf("%s: SIGKILL fetch worker A (it had fetched %.0f bytes)", time.Since(start).Round(time.Second), fetchedByA)
	c.fetchA.kill()
	c.fetchA.start()

	before := c.waitDone("s3-big", big*4/10)
	hashedBy1 := c.scrape(c.cpu1, "batchfetch_hash_bytes_total")
	t.Logf("%s: blackhole CPU worker 1's way to S3 for 30 s (%d URLs done; it had hashed %.0f bytes)", time.Since(start).Round(time.Second), before.Done, hashedBy1)
	c.s3.cpu1.blackhole()
	time.Sleep(30 * time.Second) // the partition's length, which is the scenario
	during := c.progress("s3-big")
	hashedDuring := c.scrape(c.cpu1, "batchfetch_hash_bytes_total")
	c.s3.cpu1.heal()
	healed := time.Now()
	t.Logf("%s: healed (%d URLs done during the partition; CPU worker 1 hashed %.0f bytes in it)", time.Since(start).Round(time.Second), during.Done-before.Done, hashedDuring-hashedBy1)
	if during.Done <= before.Done {
		t.Errorf("no progress while CPU worker 1 was cut off from S3: %d then %d URLs done", before.Done, during.Done)
	}

	out := c.checkBatch("s3-big", site, 0, big)
	wall := time.Since(start)
	byKind, requests := requestsSince(c.s3.srv.Requests(t), requestsBefore)
	objectsAfter := len(c.s3.srv.Keys(t, s3test.Bucket))
	t.Logf("%s: the batch finished, %s after the partition healed", wall.Round(time.Second), time.Since(healed).Round(time.Second))
	resultsFiles := map[string]bool{out.ResultsFile: true}

	// Every worker did work; CPU worker 1 again after the partition. The
	// batch may have been done by the others before it got back: then
	// more batches, until it takes some (or a minute and a half has passed).
	h1 := c.scrape(c.cpu1, "batchfetch_hash_bytes_total")
	for k := 0; h1 <= hashedDuring && time.Since(healed) < 90*time.Second; k++ {
		id := fmt.Sprintf("s3-more-%d", k)
		c.startBatch(id, site, big+k*5_000, 5_000)
		resultsFiles[c.checkBatch(id, site, big+k*5_000, 5_000).ResultsFile] = true
		h1 = c.scrape(c.cpu1, "batchfetch_hash_bytes_total")
	}
	t.Logf("CPU worker 1 hashed %.0f bytes in all, %.0f after the partition healed", h1, h1-hashedDuring)
	if h1 <= hashedDuring {
		t.Error("CPU worker 1 hashed nothing after its partition from S3 healed")
	}
	if h2 := c.scrape(c.cpu2, "batchfetch_hash_bytes_total"); h2 <= 0 {
		t.Error("CPU worker 2 hashed nothing")
	}
	if fetchedByA <= 0 {
		t.Error("fetch worker A fetched nothing before it was killed")
	}
	if a := c.scrape(c.fetchA, "batchfetch_fetch_bytes_total"); a <= 0 {
		t.Error("fetch worker A fetched nothing after its restart")
	}
	if b := c.scrape(c.fetchB, "batchfetch_fetch_bytes_total"); b <= 0 {
		t.Error("fetch worker B fetched nothing")
	}

	weed, _, _ := procTicks(c.s3.srv.Pid())
	for _, p := range []*proc{c.fetchA, c.fetchB, c.cpu1, c.cpu2, c.ui, c.server} {
		p.stop()
	}
	// Nothing of the batches in the bucket but their results files.
	keys := c.s3.srv.Keys(t, s3test.Bucket)
	left, members := c.s3.leftObjects(t, keys, resultsFiles)
	if len(left) > 0 {
		t.Errorf("%d objects or uploads left in the bucket, e.g. %s", len(left), strings.Join(left[:min(len(left), 5)], ", "))
	}
	// And nothing on the workers' own disks: with --blob-url, bodies go
	// to the bucket only.
	for name, p := range map[string]*proc{"fetch A": c.fetchA, "fetch B": c.fetchB, "cpu 1": c.cpu1, "cpu 2": c.cpu2} {
		if files, err := os.ReadDir(c.tmpDirs[p]); err != nil || len(files) > 0 {
			t.Errorf("worker %s's TMPDIR holds %d files (%v), e.g. %v", name, len(files), err, files[:min(len(files), 3)])
		}
	}

	kinds := slices.Sorted(maps.Keys(byKind))
	var perKind []string
	for _, k := range kinds {
		perKind = append(perKind, fmt.Sprintf("%s %.4f", k, float64(byKind[k])/big))
	}
	t.Logf("figures: %d URLs in %s wall (%.0f URLs/s), blobs in S3, no disk shared; S3 requests during the batch %d (%.4f per URL: %s); objects in the bucket %d before, %d at the batch's end, %d after the workers stopped (%d membership records), e.g. %q; CPU seconds: fetch workers %.0f (A %.0f, B %.0f), CPU workers %.0f (1 %.0f, 2 %.0f), Temporal server %.0f, S3 server %.0f",
		big, wall.Round(time.Second), big/wall.Seconds(), requests, float64(requests)/big, strings.Join(perKind, ", "),
		objectsBefore, objectsAfter, len(keys), members, keys[:min(len(keys), 6)],
		(c.fetchA.cpuTime() + c.fetchB.cpuTime()).Seconds(), c.fetchA.cpuTime().Seconds(), c.fetchB.cpuTime().Seconds(),
		(c.cpu1.cpuTime() + c.cpu2.cpuTime()).Seconds(), c.cpu1.cpuTime().Seconds(), c.cpu2.cpuTime().Seconds(),
		c.server.cpuTime().Seconds(), ticksTime(weed).Seconds())
}
