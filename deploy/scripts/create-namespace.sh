#!/bin/sh
# Registers batchfetch's namespace once the server answers; does nothing if
# it exists. Runs in the temporalio/admin-tools image (the temporal CLI).
#
# Environment: TEMPORAL_ADDRESS, NAMESPACE (default "default"), RETENTION
# (how long closed batches stay visible, default 72h).
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${NAMESPACE:=default}"
: "${RETENTION:=72h}"

tries=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 90 ]; then
    echo "the Temporal server at $TEMPORAL_ADDRESS is not healthy after 3 minutes" >&2
    exit 1
  fi
  echo "waiting for the Temporal server at $TEMPORAL_ADDRESS"
  sleep 2
done

if temporal operator namespace describe --namespace "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION" --address "$TEMPORAL_ADDRESS"
  echo "namespace $NAMESPACE created"
fi

# The counts of each batch, shown in the Web UI's list of workflows and
# searchable (BatchFetchFailed > 0). A namespace without them still runs
# batches.
for name in BatchFetchOK BatchFetchFailed BatchFetchTotal; do
  if out=$(temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type Int --address "$TEMPORAL_ADDRESS" 2>&1); then
    echo "search attribute $name created"
  elif echo "$out" | grep -qi "already"; then
    echo "search attribute $name exists"
  else
    echo "$out" >&2
    exit 1
  fi
done
