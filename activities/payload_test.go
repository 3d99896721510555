package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"
)

func payloadSize(t *testing.T, v any) int {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return p.Size()
}

// A staged chunk of a hundred of the longest URLs (each character one the
// JSON encoding escapes six-fold) travels without them: its fetch result
// and hash request stay small, and the results file still has every URL.
func TestStagedChunkPayloadsStaySmall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "body")
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	ctx := context.Background()
	var urls []string
	w, _ := e.store.Create(ctx, URLsKey("batches/r", 0))
	for i := range 100 {
		base := fmt.Sprintf("%s/%d?", srv.URL, i)
		u := base + strings.Repeat("&", MaxURLLength-len(base))
		if err := CheckURL(u); err != nil {
			t.Fatal(err)
		}
		urls = append(urls, u)
		fmt.Fprintln(w, u)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", Chunk: 0, First: 0, Concurrency: 10, Policy: quick})
	fetched := payloadSize(t, FetchChunkResult{Items: items})
	hashReq := payloadSize(t, HashChunkRequest{Prefix: "batches/r", Chunk: 0, Items: items, Staged: true})
	t.Logf("fetch result %d bytes, hash request %d bytes (the URLs alone: %d bytes encoded)", fetched, hashReq, payloadSize(t, urls))
	if fetched > 64<<10 || hashReq > 64<<10 {
		t.Errorf("fetch result %d bytes, hash request %d: the URLs travel in them", fetched, hashReq)
	}
	v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Prefix: "batches/r", Chunk: 0, Items: items, Staged: true})
	if err != nil {
		t.Fatal(err)
	}
	var hr HashChunkResult
	if err := v.Get(&hr); err != nil || hr.OK != 100 {
		t.Fatalf("hash: %+v, %v", hr, err)
	}
	r, err := e.store.Open(ctx, ResultsKey("batches/r", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan(); i++ {
		var res Result
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil || res.URL != urls[i] || res.Outcome != OutcomeOK {
			t.Fatalf("results line %d: %.80s..., %v", i, res.URL, err)
		}
	}
}
