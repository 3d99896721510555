package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/cpuworker"
	"github.com/batchfetch/batchfetch/internal/buildinfo"
)

// DeploymentName is the Worker Deployment every batchfetch worker joins
// by default: fetch and CPU workers of one build are one version of it.
const DeploymentName = cpuworker.DeploymentName

// When a worker makes its own version the deployment's current one.
const (
	// MakeCurrentFirst: only while the deployment has never had a
	// current version (a first install, or the first versioned release
	// taking over from unversioned workers), and once this version has
	// workers on both task queues. Later releases are made current by
	// the operator (temporal worker deployment set-current-version).
	MakeCurrentFirst = "first"
	// MakeCurrentNever leaves it to the operator.
	MakeCurrentNever = "never"
	// MakeCurrentAlways makes it current as soon as it serves both task
	// queues, whatever was current: the dev stack's choice, where the
	// newest build is the one to run.
	MakeCurrentAlways = "always"
)

// Deployment is the Worker Deployment version a worker joins.
type Deployment struct {
	// Name of the deployment (default DeploymentName); BuildID of this
	// build (default buildinfo.ID()).
	Name, BuildID string
	// Unversioned: poll without Worker Versioning, as releases before it
	// did (for a server without Worker Deployments).
	Unversioned bool
	// MakeCurrent is MakeCurrentFirst (default), MakeCurrentNever or
	// MakeCurrentAlways.
	MakeCurrent string
}

func (d Deployment) withDefaults() Deployment {
	if d.Name == "" {
		d.Name = DeploymentName
	}
	if d.BuildID == "" {
		d.BuildID = buildinfo.ID()
	}
	if d.MakeCurrent == "" {
		d.MakeCurrent = MakeCurrentFirst
	}
	return d
}

// options are the SDK's deployment options of a worker. Both workflow
// types are AutoUpgrade: a batch moves to the current version at its next
// workflow task (workflow.GetVersion keeps its history replaying), so an
// operator can stop the old workers without waiting for hours-long
// batches to drain.
func (d Deployment) options() worker.DeploymentOptions {
	if d.Unversioned {
		return worker.DeploymentOptions{}
	}
	o := cpuworker.Versioned(d.BuildID)
	o.Version.DeploymentName = d.Name
	o.DefaultVersioningBehavior = workflow.VersioningBehaviorAutoUpgrade
	return o
}

// behavior is the versioning behaviour of both workflow types.
func (d Deployment) behavior() workflow.VersioningBehavior {
	if d.Unversioned {
		return workflow.VersioningBehaviorUnspecified
	}
	return workflow.VersioningBehaviorAutoUpgrade
}

// makeCurrent makes d's version current as d.MakeCurrent says, once it
// has workers on every one of queues, retrying until ctx ends. It
// returns what it did, for the log.
func makeCurrent(ctx context.Context, c client.Client, d Deployment, queues []string, note func(string)) (string, error) {
	if d.Unversioned || d.MakeCurrent == MakeCurrentNever {
		return "left to the operator", nil
	}
	h := c.WorkerDeploymentClient().GetHandle(d.Name)
	wait := 200 * time.Millisecond
	since := time.Now()
	for {
		done, what, err := tryMakeCurrent(ctx, h, d, queues)
		if done || err != nil {
			return what, err
		}
		if what != "" && time.Since(since) > 15*time.Second && note != nil {
			// Said once: a worker of the other role with another build
			// ID joins another version, and this one waits for ever.
			note(what)
			note = nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// tryMakeCurrent is one look at the deployment: done when nothing is left
// to do.
func tryMakeCurrent(ctx context.Context, h client.WorkerDeploymentHandle, d Deployment, queues []string) (done bool, what string, err error) {
	desc, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, "", nil // created by the first poll, shortly
	}
	if err != nil {
		return false, "", nil // the server may be restarting: look again
	}
	rc := desc.Info.RoutingConfig
	if rc.CurrentVersion != nil && rc.CurrentVersion.BuildID == d.BuildID {
		return true, "already current", nil
	}
	decided := rc.CurrentVersion != nil || !rc.CurrentVersionChangedTime.IsZero() || rc.RampingVersion != nil
	if d.MakeCurrent == MakeCurrentFirst && decided {
		return true, "left to the operator: the deployment has a current version", nil
	}
	v, err := h.DescribeVersion(ctx, client.WorkerDeploymentDescribeVersionOptions{BuildID: d.BuildID})
	if err != nil || !servesAll(v.Info.TaskQueuesInfos, queues) {
		// The other role's workers are not polling yet.
		return false, fmt.Sprintf("waiting to be made current: no worker of build %s polls all of %v yet (start the other role with --build-id %s)", d.BuildID, queues, d.BuildID), nil
	}
	_, err = h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{
		BuildID: d.BuildID, ConflictToken: desc.ConflictToken,
		IgnoreMissingTaskQueues: d.MakeCurrent == MakeCurrentAlways,
	})
	if err != nil {
		return false, "", nil // changed meanwhile: look again
	}
	return true, "made current", nil
}

// servesAll tells whether a version has workers on every one of queues.
func servesAll(infos []client.WorkerDeploymentTaskQueueInfo, queues []string) bool {
	for _, q := range queues {
		if !slices.ContainsFunc(infos, func(i client.WorkerDeploymentTaskQueueInfo) bool { return i.Name == q }) {
			return false
		}
	}
	return true
}
