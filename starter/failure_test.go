package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/workflows"
)

func TestPlainFailureDropsTheSDKsNotes(t *testing.T) {
	for in, want := range map[string]string{
		"workflow execution error (type: BatchFetch, workflowID: b-1, runID: r-1): writing results: activity error (type: AssembleResults, scheduledEventID: 11, startedEventID: 12, identity: 1@h): the blob store of this CPU worker is not the fetch worker's (type: WrongBlobStore, retryable: true)": "writing results: the blob store of this CPU worker is not the fetch worker's",
		"no route to host (type: FetchError, retryable: false)": "no route to host",
		"plain words (in parentheses)":                          "plain words (in parentheses)",
	} {
		if got := plainFailure(errors.New(in)); got != want {
			t.Errorf("plainFailure(%q) = %q, want %q", in, got, want)
		}
	}
}

// A result's error, and an activity's last failure, are shown without
// the SDK's notes too.
func TestResultErrorsInTheTableAreWithoutTheSDKsNotes(t *testing.T) {
	const noisy = "hashing: this CPU worker's blob store (/b, identity 1) is not the one the chunk's bodies were fetched into (identity 2) (type: WrongBlobStore, retryable: true)"
	if got, want := plainText(noisy), strings.TrimSuffix(noisy, " (type: WrongBlobStore, retryable: true)"); got != want {
		t.Errorf("plainText = %q, want %q", got, want)
	}
	out := workflows.Output{Results: []workflows.Result{{URL: "http://127.0.0.1/a", Outcome: workflows.OutcomeError, Attempts: 10, Error: noisy}}, Failed: 1, Total: 1}
	var b bytes.Buffer
	if err := printOutput(context.Background(), &b, out, options{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "(type:") || !strings.Contains(b.String(), "were fetched into (identity 2)") {
		t.Errorf("the table:\n%s", b.String())
	}
}

func TestTheResumeHintKeepsThePorts(t *testing.T) {
	if got := (options{devPort: 7233, devUIPort: 8233}).devPortFlags(); got != "" {
		t.Errorf("default ports: %q", got)
	}
	if got := (options{devPort: 17233, devUIPort: 18233}).devPortFlags(); got != " --dev-port 17233 --dev-ui-port 18233" {
		t.Errorf("own ports: %q", got)
	}
}
