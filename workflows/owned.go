package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// AdoptInputsSignal hands a running batch input files to remove when it
// ends, as a list of blob store keys under "inputs/". `starter schedule
// delete` sends it the deleted schedule's URL list: the run may not have
// read it yet, and no later run will.
const AdoptInputsSignal = "adopt-inputs"

// ownedInputs are the input files a batch removes when it ends: its
// urls_file, previous_file and the key of its body, when its input says
// remove_inputs.
func (in Input) ownedInputs() []string {
	if !in.RemoveInputs {
		return nil
	}
	var keys []string
	owned := []string{in.URLsFile, in.PreviousFile}
	if in.Body != nil {
		owned = append(owned, in.Body.Key)
	}
	for _, k := range owned {
		if k != "" && checkKey(k) == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// adoptable keeps the keys a signal may hand a batch: a schedule's URL
// lists only (inputs/schedules/<name>), one file each.
func adoptable(keys []string) []string {
	var ok []string
	for _, k := range keys {
		name, found := strings.CutPrefix(k, "inputs/schedules/")
		if found && name != "" && !strings.Contains(name, "/") && checkKey(k) == nil {
			ok = append(ok, k)
		}
	}
	return ok
}

// releaseInputs removes, once the batch is over (completed, failed,
// canceled, or refused as invalid), the input files it owns, and those
// handed to it by AdoptInputsSignal. Signals that arrive while it works
// are drained too, so none is lost when the workflow completes. A file it
// cannot remove is logged and left: the batch's answer stands.
func releaseInputs(ctx workflow.Context, in Input, adopted workflow.ReceiveChannel) {
	keys := in.ownedInputs()
	bg, _ := workflow.NewDisconnectedContext(ctx)
	gated := false
	for {
		var more []string
		for adopted.ReceiveAsync(&more) {
			keys = append(keys, adoptable(more)...)
		}
		if len(keys) == 0 {
			return
		}
		// Runs started before batches owned their inputs replay without it.
		if !gated && workflow.GetVersion(bg, "release-inputs", workflow.DefaultVersion, 1) != 1 {
			return
		}
		gated = true
		var f *activities.Fetcher
		for _, k := range keys {
			if err := workflow.ExecuteActivity(housekeeping(bg, 5*time.Minute, 10, "remove "+k), f.RemoveInput, k).Get(bg, nil); err != nil {
				workflow.GetLogger(ctx).Error("removing an input file failed", "key", k, "error", err)
			}
		}
		keys = nil
	}
}
