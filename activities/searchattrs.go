package activities

import (
	"context"
	"fmt"
	"sort"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
)

// SearchAttributesActivity is the activity (of a fetch worker: see
// RegisterFetcher) that names the Int search attributes of the batch's
// namespace whose names begin with SearchAttributePrefix. A batch keeps
// its counts in them only when its namespace has them.
const SearchAttributesActivity = "BatchFetchSearchAttributes"

// SearchAttributePrefix begins the names of the batch's search attributes.
const SearchAttributePrefix = "BatchFetch"

// searchAttributes lists them with the worker's own client.
func searchAttributes(ctx context.Context) ([]string, error) {
	return IntSearchAttributes(ctx, activity.GetClient(ctx), activity.GetInfo(ctx).WorkflowNamespace)
}

// IntSearchAttributes names, sorted, the Int search attributes of
// namespace ns whose names begin with SearchAttributePrefix.
func IntSearchAttributes(ctx context.Context, c client.Client, ns string) ([]string, error) {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return nil, fmt.Errorf("listing the search attributes of namespace %s: %w", ns, err)
	}
	var names []string
	for name, t := range resp.GetCustomAttributes() {
		if t == enumspb.INDEXED_VALUE_TYPE_INT && strings.HasPrefix(name, SearchAttributePrefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}
