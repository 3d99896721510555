package tracing_test

import (
	"strings"
	"testing"
)

// roles are the services (service.name/batchfetch.role) the HTTP and the
// hash spans of a batch come from.
type roles struct{ fetch, cpu string }

var (
	workerRoles = roles{fetch: "batchfetch-worker/fetch", cpu: "batchfetch-worker/cpu"}
	devRoles    = roles{fetch: "batchfetch-starter/dev", cpu: "batchfetch-starter/dev"}
)

// traces indexes the exported spans.
type traces struct {
	spans []span
	byID  map[string]span
}

func newTraces(spans []span) *traces {
	tr := &traces{spans: spans, byID: map[string]span{}}
	for _, s := range spans {
		tr.byID[s.id()] = s
	}
	return tr
}

func (tr *traces) named(name string) []span {
	var out []span
	for _, s := range tr.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// path is s and its ancestors' names, up to the root or the first parent
// not exported; top is the last span reached.
func (tr *traces) path(s span) (names []string, top span) {
	for {
		names = append(names, s.Name+" ("+s.service+"/"+s.role+")")
		if len(s.ParentSpanId) == 0 {
			return names, s
		}
		p, ok := tr.byID[s.parent()]
		if !ok {
			return append(names, "? (parent not exported)"), span{}
		}
		s = p
	}
}

// root is batch id's root span: the starter's start.
func (tr *traces) root(t *testing.T, id string) span {
	t.Helper()
	var root span
	for _, s := range tr.named("start batch") {
		if s.attr("temporalWorkflowID") == id {
			if root.Span != nil {
				t.Fatalf("%s: two start spans", id)
			}
			root = s
		}
	}
	if root.Span == nil || root.service != "batchfetch-starter" || len(root.ParentSpanId) != 0 {
		t.Fatalf("%s: no root span of the starter's start (got %+v)", id, root)
	}
	return root
}

// under tells whether s is under root, and says how it is not.
func (tr *traces) under(t *testing.T, root, s span) bool {
	names, top := tr.path(s)
	if top.Span != root.Span {
		t.Errorf("span %s is not under the starter's start of %v: %s", s.Name, root.attr("temporalWorkflowID"), strings.Join(names, " < "))
		return false
	}
	return true
}

// count is the number of spans named name in root's trace, each under
// root.
func (tr *traces) count(t *testing.T, root span, name string) int {
	n := 0
	for _, s := range tr.named(name) {
		if s.trace() == root.trace() && tr.under(t, root, s) {
			n++
		}
	}
	return n
}

// check asserts that batch id is one trace, from the starter's "start
// batch" span down to an HTTP span for every URL (sizes: each body's
// length; flaky: the URLs answered 503 at their first attempt) and a hash
// span for each, with a process span under it when step is not sha256,
// each from the services of from. It returns the number of HTTP spans in the trace.
func (tr *traces) check(t *testing.T, id string, sizes []int, flaky map[int]bool, step string, from roles) int {
	t.Helper()
	root := tr.root(t, id)
	under := func(s span) bool { return tr.under(t, root, s) }
	type request struct{ attempt, status, size int64 }
	requests := map[int64][]request{}
	count := 0
	for _, s := range tr.named("HTTP GET") {
		if s.trace() != root.trace() {
			continue
		}
		count++
		if !under(s) {
			continue
		}
		if s.service+"/"+s.role != from.fetch {
			t.Errorf("%s: an HTTP span from %s/%s, want %s", id, s.service, s.role, from.fetch)
		}
		for _, k := range []string{"url.full", "url.path", "url.query"} {
			if s.attr(k) != nil {
				t.Errorf("%s: an HTTP span records %s = %v", id, k, s.attr(k))
			}
		}
		if s.attr("server.address") != "127.0.0.1" {
			t.Errorf("%s: HTTP span host %v", id, s.attr("server.address"))
		}
		i, _ := s.attr("batchfetch.url.index").(int64)
		r := request{}
		r.attempt, _ = s.attr("batchfetch.attempt").(int64)
		r.status, _ = s.attr("http.response.status_code").(int64)
		r.size, _ = s.attr("http.response.body.size").(int64)
		requests[i] = append(requests[i], r)
	}
	for i, size := range sizes {
		want := []request{{1, 200, int64(size)}}
		if flaky[i] {
			want = []request{{1, 503, -1}, {2, 200, int64(size)}}
		}
		got := requests[int64(i)]
		ok := len(got) == len(want)
		for j := 0; ok && j < len(want); j++ {
			ok = got[j].attempt == want[j].attempt && got[j].status == want[j].status && (want[j].size < 0 || got[j].size == want[j].size)
		}
		if !ok {
			t.Errorf("%s: URL %d: HTTP spans (attempt, status, bytes) %v, want %v (bytes -1: any)", id, i, got, want)
		}
	}
	hashed := map[int64]span{}
	for _, s := range tr.named("hash") {
		if s.trace() != root.trace() || !under(s) {
			continue
		}
		if s.service+"/"+s.role != from.cpu {
			t.Errorf("%s: a hash span from %s/%s, want %s", id, s.service, s.role, from.cpu)
		}
		i, _ := s.attr("batchfetch.url.index").(int64)
		hashed[i] = s
	}
	processed := map[string]bool{}
	for _, s := range tr.named("process") {
		if p, ok := tr.byID[s.parent()]; ok && p.Name == "hash" && s.attr("batchfetch.process") == step {
			processed[p.id()] = true
		}
	}
	for i, size := range sizes {
		h, ok := hashed[int64(i)]
		switch {
		case !ok:
			t.Errorf("%s: URL %d has no hash span in the trace", id, i)
		case h.attr("batchfetch.outcome") != "ok" || h.attr("batchfetch.body.size") != int64(size) || h.attr("batchfetch.process") != step:
			t.Errorf("%s: URL %d: hash span outcome %v, size %v, process %v; want ok, %d, %s", id, i,
				h.attr("batchfetch.outcome"), h.attr("batchfetch.body.size"), h.attr("batchfetch.process"), size, step)
		case step != "sha256" && !processed[h.id()]:
			t.Errorf("%s: URL %d: no %s process span under its hash span", id, i, step)
		}
	}
	return count
}

// summary logs how many spans of each name each service sent, and one
// HTTP span's path to its root.
func (tr *traces) summary(t *testing.T) {
	n := map[string]int{}
	for _, s := range tr.spans {
		n[s.Name+" ("+s.service+"/"+s.role+")"]++
	}
	t.Logf("spans: %v", n)
	if h := tr.named("HTTP GET"); len(h) > 0 {
		names, _ := tr.path(h[0])
		t.Logf("an HTTP span's path: %s", strings.Join(names, " < "))
	}
	if h := tr.named("process"); len(h) > 0 {
		names, _ := tr.path(h[0])
		t.Logf("a process span's path: %s", strings.Join(names, " < "))
	}
}
