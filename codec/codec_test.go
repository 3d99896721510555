package codec_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/batchfetch/batchfetch/codec"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/workflows"
)

func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestKeysRotate(t *testing.T) {
	old, err := codec.New([]string{"k1:" + key(1)})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := converter.GetDefaultDataConverter().ToPayload("secret https://example.com/x")
	sealed, err := old.Encode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed[0].GetData(), []byte("secret")) || string(sealed[0].GetMetadata()[codec.MetadataKeyID]) != "k1" {
		t.Fatalf("not sealed with k1: %v", sealed[0])
	}
	rotated, _ := codec.New([]string{"k2:" + key(2), "k1:" + key(1)})
	opened, err := rotated.Decode(sealed)
	if err != nil || !bytes.Equal(opened[0].GetData(), p.GetData()) {
		t.Fatalf("a rotated codec cannot open old payloads: %v", err)
	}
	resealed, _ := rotated.Encode([]*commonpb.Payload{p})
	if string(resealed[0].GetMetadata()[codec.MetadataKeyID]) != "k2" {
		t.Errorf("new payloads are not sealed with the newest key")
	}
	dropped, _ := codec.New([]string{"k2:" + key(2)})
	if _, err := dropped.Decode(sealed); err == nil || !strings.Contains(err.Error(), `key "k1", which is not configured`) {
		t.Errorf("got %v, want an error naming the missing key", err)
	}
	for _, bad := range [][]string{{}, {"nokey"}, {"k:not-base64!"}, {"k:" + base64.StdEncoding.EncodeToString([]byte("short"))}} {
		if _, err := codec.New(bad); err == nil {
			t.Errorf("New(%q) accepted bad keys", bad)
		}
	}
}

// TestNoPlaintextInTheServersDatabase runs a batch with the codec on and
// looks for its URLs in the server's SQLite files.
func TestNoPlaintextInTheServersDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "server.sqlite")
	cd, err := codec.New([]string{"test:" + key(7)})
	if err != nil {
		t.Fatal(err)
	}
	stack, err := devstack.Start(context.Background(), devstack.Config{DBFile: db,
		DataConverter: cd.DataConverter(), FailureConverter: cd.FailureConverter()})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	c := stack.Client
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "missing") {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "body")
	}))
	defer site.Close()
	const marker = "confidential-path-7f3a9"
	urls := []string{site.URL + "/" + marker + "/a", site.URL + "/" + marker + "/b", site.URL + "/" + marker + "/missing"}
	ctx := context.Background()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, Mode: workflows.ModeFailFast})
	if err != nil {
		t.Fatal(err)
	}
	err = run.Get(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), marker) {
		t.Fatalf("got %v, want the batch to fail naming the missing URL (decrypted for us)", err)
	}

	// The Web UI's codec server opens what the database holds, with the token.
	iter := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	first, err := iter.Next()
	if err != nil {
		t.Fatal(err)
	}
	raw := first.GetWorkflowExecutionStartedEventAttributes().GetInput()
	body, _ := protojson.Marshal(raw)
	cs := httptest.NewServer(cd.Handler("s3cret", nil))
	defer cs.Close()
	for token, want := range map[string]int{"s3cret": 200, "wrong": 401, "": 401} {
		req, _ := http.NewRequest(http.MethodPost, cs.URL+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: status %d, want %d", token, resp.StatusCode, want)
		}
		if want == 200 {
			var decoded commonpb.Payloads
			if err := protojson.Unmarshal(out, &decoded); err != nil || len(decoded.GetPayloads()) != 1 || !bytes.Contains(decoded.GetPayloads()[0].GetData(), []byte(marker)) {
				t.Errorf("decode did not give back the input: %s", out)
			}
		}
	}

	stack.Stop() // the database files are complete once the server has stopped
	files, _ := filepath.Glob(db + "*")
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte(marker)); i >= 0 {
			t.Errorf("%s holds a URL in plaintext: ...%q...", filepath.Base(f), b[max(0, i-80):min(len(b), i+40)])
		}
	}
}
