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
