package main

import (
	"strings"
	"testing"
)

// The starter names its object store, in its errors and in the worker
// command it suggests, without the password its --blob-url holds.
func TestTheStartersStoreIsNamedWithoutItsPassword(t *testing.T) {
	o := options{blobURL: "s3://key:hunter2@bucket?region=x", blobDir: "/unused"}
	if got := o.storeLocation(); got != "s3://bucket?region=x" {
		t.Errorf("storeLocation() = %q", got)
	}
	err := storeMismatch(&o, "aa", workerStore{"bb", "s3://other"})
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "s3://bucket?region=x") {
		t.Errorf("the mismatch: %v", err)
	}
}
