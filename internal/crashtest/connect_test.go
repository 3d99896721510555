package crashtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/workflows"
)

// waitOutput waits until p has printed want, and fails the test if p exits
// first or it takes longer than a minute.
func waitOutput(t *testing.T, p *proc, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.out.String(), want) {
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("%s never printed %q:\n%s", p.name, want, tail(p.out))
		}
		time.Sleep(20 * time.Millisecond) // reading the process's log as it writes it
	}
}

// TestWorkerWaitsForTheServerAndItsNamespace starts a worker before its
// server, and the server before the namespace exists, as a compose file or
// a supervisor may: the worker says what it waits for, keeps running, and
// serves a batch once both are there.
func TestWorkerWaitsForTheServerAndItsNamespace(t *testing.T) {
	dir := t.TempDir()
	port := freeport.Run(t, 8)
	hostPort := fmt.Sprintf("127.0.0.1:%d", port)
	metrics := fmt.Sprintf("127.0.0.1:%d", freeport.Run(t, 1))
	w := &proc{t: t, name: "worker", env: []string{"TEMPORAL_ADDRESS=" + hostPort, "TEMPORAL_NAMESPACE=late"},
		args: []string{"--role", "all", "--allow", "127.0.0.1", "--blob-dir", filepath.Join(dir, "blobs"), "--metrics-listen", metrics}}
	w.start()
	defer w.stop()
	waitOutput(t, w, "waiting for Temporal")
	readyz := func() int {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := readyz(); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while waiting for the server: %d, want 503", got)
	}

	srv := &proc{t: t, name: "devserver", args: []string{"--db", filepath.Join(dir, "server.sqlite"), "--port", fmt.Sprint(port), "--ui-port", "0"}}
	srv.start()
	defer srv.stop()
	waitOutput(t, srv, "temporal server at")
	waitOutput(t, w, `namespace \"late\" does not exist (yet)`)
	if w.exited() {
		t.Fatalf("the worker exited: %s", tail(w.out))
	}

	c, err := client.Dial(client.Options{HostPort: hostPort, Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WorkflowService().RegisterNamespace(context.Background(), &workflowservice.RegisterNamespaceRequest{
		Namespace: "late", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, w, "connected to Temporal")
	// The log line comes from the connection itself, a moment before the
	// worker marks itself ready: ask as a probe would, a few times.
	got := readyz()
	for end := time.Now().Add(5 * time.Second); got != http.StatusOK && time.Now().Before(end); got = readyz() {
		time.Sleep(50 * time.Millisecond) // polling the probe, as an orchestrator does
	}
	if got != http.StatusOK {
		t.Errorf("/readyz once connected: %d, want 200", got)
	}

	site := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(rw, r.URL.Path) }))
	defer site.Close()
	lc, err := client.Dial(client.Options{HostPort: hostPort, Namespace: "late", Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	run, err := lc.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{site.URL + "/a", site.URL + "/b"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil || out.OK != 2 {
		t.Fatalf("batch: %v, %+v\nworker:\n%s", err, out, tail(w.out))
	}
}

// TestWorkerConnectTimeout: with --connect-timeout, a worker whose server
// never comes gives up with a message that names the address and the flag.
func TestWorkerConnectTimeout(t *testing.T) {
	hostPort := fmt.Sprintf("127.0.0.1:%d", freeport.Run(t, 1))
	w := &proc{t: t, name: "worker", env: []string{"TEMPORAL_ADDRESS=" + hostPort},
		args: []string{"--role", "cpu", "--blob-dir", t.TempDir(), "--connect-timeout", "2s"}}
	w.start()
	<-w.done
	if w.cmd.ProcessState.Success() {
		t.Fatalf("the worker exited 0 without a server:\n%s", w.out)
	}
	// The last line says why, not only that time ran out.
	for _, want := range []string{hostPort, "--connect-timeout", "waiting for Temporal", "connection refused\"\n"} {
		if !strings.Contains(w.out.String(), want) {
			t.Errorf("the worker's output does not say %q:\n%s", want, w.out)
		}
	}
}

// TestWorkerStopsOnWhatWaitingCannotFix: TLS against a plaintext server
// is not retried for ever; a port in use is an error, not a clean stop.
func TestWorkerStopsOnWhatWaitingCannotFix(t *testing.T) {
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n") // not a TLS server
			c.Close()
		}
	}()
	w := &proc{t: t, name: "worker", env: []string{"TEMPORAL_ADDRESS=" + plain.Addr().String(), "TEMPORAL_TLS=true"},
		args: []string{"--role", "cpu", "--blob-dir", t.TempDir()}}
	w.start()
	select {
	case <-w.done:
	case <-time.After(time.Minute):
		w.kill()
		t.Fatalf("the worker still retries a TLS mismatch after a minute:\n%s", tail(w.out))
	}
	if w.cmd.ProcessState.Success() || !strings.Contains(w.out.String(), "tls: ") {
		t.Errorf("exit %v, want a failure naming the TLS error:\n%s", w.cmd.ProcessState, w.out)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, args := range [][]string{
		{"--role", "cpu", "--metrics-listen", busy.Addr().String()},
		{"--role", "codec", "--codec-listen", busy.Addr().String()},
	} {
		w := &proc{t: t, name: "worker", env: []string{"TEMPORAL_ADDRESS=127.0.0.1:1",
			"BATCHFETCH_CODEC_KEYS=k:" + strings.Repeat("A", 43) + "=", "BATCHFETCH_CODEC_TOKEN=" + strings.Repeat("t", 32)},
			args: append(args, "--blob-dir", t.TempDir())}
		w.start()
		<-w.done
		if w.cmd.ProcessState.ExitCode() != 1 || !strings.Contains(w.out.String(), "address already in use") {
			t.Errorf("%v on a port in use: exit %d, want 1 and the reason:\n%s", args, w.cmd.ProcessState.ExitCode(), w.out)
		}
	}
}
