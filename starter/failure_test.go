package main

import (
	"errors"
	"testing"
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

func TestTheResumeHintKeepsThePorts(t *testing.T) {
	if got := (options{devPort: 7233, devUIPort: 8233}).devPortFlags(); got != "" {
		t.Errorf("default ports: %q", got)
	}
	if got := (options{devPort: 17233, devUIPort: 18233}).devPortFlags(); got != " --dev-port 17233 --dev-ui-port 18233" {
		t.Errorf("own ports: %q", got)
	}
}
