package workflows

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs
// (see README: Development). A workflow change that would break batches
// already running fails here instead of in production.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			hf, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer hf.Close()
			history, err := client.HistoryFromJSON(hf, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var ids struct {
				WorkflowID string `json:"workflow_id"`
				RunID      string `json:"run_id"`
			}
			b, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".ids")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &ids); err != nil {
				t.Fatal(err)
			}
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(BatchFetch, workflow.RegisterOptions{Name: WorkflowName})
			r.RegisterWorkflowWithOptions(BatchFetchPart, workflow.RegisterOptions{Name: PartWorkflowName})
			if err := r.ReplayWorkflowHistoryWithOptions(nil, history, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: ids.WorkflowID, RunID: ids.RunID},
			}); err != nil {
				t.Errorf("replaying %s: %v", f, err)
			}
		})
	}
}
