package activities

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
)

// An attempt that resumes from an earlier attempt's part releases that
// part once it has copied it: by the time it asks for the rest, its
// checkpoint already names its own copy. Otherwise an attempt cut off
// before its first heartbeat (the Temporal server going down) would hand
// the next one a checkpoint naming a part that is gone, and the body
// would be fetched again from byte zero.
func TestResumedAttemptCheckpointsItsCopyAtOnce(t *testing.T) {
	e := newFetchEnv(t, 0)
	body := randomBytes(21, 3*SmallBody)
	const kept = SmallBody + 123

	// What an earlier attempt kept.
	ctx := context.Background()
	oldKey := BodyKey(WorkPrefix("batches/r", 0), 0) + ".earlier"
	pw, err := e.store.CreateResumable(ctx, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(body[:kept]); err != nil {
		t.Fatal(err)
	}
	if err := pw.Pause(); err != nil {
		t.Fatal(err)
	}
	prev := Resume{Bytes: kept, ETag: `"v1"`, Total: int64(len(body)), Blob: oldKey, CRC32C: crc32.Checksum(body[:kept], castagnoli)}

	var mu sync.Mutex
	var beats []URLCheckpoint
	e.env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		var cp URLCheckpoint
		if d.Get(&cp) == nil {
			mu.Lock()
			beats = append(beats, cp)
			mu.Unlock()
		}
	})
	var atRange []URLCheckpoint // the heartbeats recorded when the range was asked for
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		if r.Header.Get("Range") != "" {
			atRange = append([]URLCheckpoint(nil), beats...)
		}
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()

	v, err := e.env.ExecuteActivity(e.f.FetchURL, FetchURLRequest{Prefix: "batches/r", Task: URLTask{URL: srv.URL + "/big"}, Policy: quick, Resume: prev})
	if err != nil {
		t.Fatalf("FetchURL: %v", err)
	}
	var out FetchChunkResult
	if err := v.Get(&out); err != nil || len(out.Items) != 1 {
		t.Fatalf("result %+v, %v", out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(ranges) != fmt.Sprintf("[bytes=%d-]", kept) {
		t.Fatalf("the server was asked for %q, want only the rest after %d bytes", ranges, kept)
	}
	if it := out.Items[0]; it.Size != int64(len(body)) || it.CRC32C == nil || *it.CRC32C != crc32.Checksum(body, castagnoli) {
		t.Errorf("got %d bytes (crc %v), want the whole body", it.Size, it.CRC32C)
	}
	found := false
	for _, cp := range atRange {
		if cp.Resume.Bytes == kept && cp.Resume.Blob != "" && cp.Resume.Blob != oldKey {
			found = true
		}
	}
	if !found {
		t.Errorf("when the rest was asked for, the heartbeats were %+v: none names the new attempt's copy of the %d kept bytes", atRange, kept)
	}
}
