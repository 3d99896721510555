package crashtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// TestCPUWorkerOnAnotherStore adds a CPU worker whose --blob-dir is not
// the fetch workers': it refuses every chunk with an error naming its
// store and the flag, the chunks go to the CPU worker that shares the
// fetch workers' store, and every URL ends ok. No URL fails with "blob not
// found".
func TestCPUWorkerOnAnotherStore(t *testing.T) {
	s, paths := newShiftySite(t, 0, 0, 20, 0, 1)
	urls := fullURLs(s, paths)
	f := newFleet(t, 1, 2)
	wrong := f.cpu[0]
	wrong.stop()
	for i, a := range wrong.args {
		if a == "--blob-dir" {
			wrong.args[i+1] = filepath.Join(t.TempDir(), "elsewhere")
		}
	}
	wrong.args = append(wrong.args, "--log-level", "error")
	wrong.start()
	run, err := f.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: fmt.Sprint("wrong-store-", time.Now().UnixNano()), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: urls, MaxInFlight: 8})
	if err != nil {
		t.Fatal(err)
	}
	f.checkBatch(run, s, urls, "", "", 0)
	if !strings.Contains(wrong.out.String(), "is not the one the chunk's bodies were fetched into") || !strings.Contains(wrong.out.String(), "--blob-dir") {
		t.Errorf("the CPU worker on another store did not say why it refused chunks:\n%s", tail(wrong.out))
	}
	if n := f.retries(run)["hash"]; n == 0 {
		t.Errorf("no hash was refused and retried: the worker on another store got no chunk")
	} else {
		t.Logf("%d hashes refused by the worker on another store and retried", n)
	}
}
