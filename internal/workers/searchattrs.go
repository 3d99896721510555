package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/workflows"
)

// registeredAttributes names the batch's search attributes that namespace
// ns has registered as Int.
func registeredAttributes(ctx context.Context, c client.Client, ns string) ([]string, error) {
	have, err := activities.IntSearchAttributes(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range workflows.SearchAttributes {
		if slices.Contains(have, name) {
			names = append(names, name)
		}
	}
	return names, nil
}

// RegisterSearchAttributes adds the batch's search attributes to namespace
// ns, as `temporal operator search-attribute create` does. Attributes it
// has already are left as they are.
func RegisterSearchAttributes(ctx context.Context, c client.Client, ns string) error {
	have, err := registeredAttributes(ctx, c, ns)
	if err != nil {
		return err
	}
	add := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributes {
		add[name] = enumspb.INDEXED_VALUE_TYPE_INT
	}
	for _, name := range have {
		delete(add, name)
	}
	if len(add) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: ns, SearchAttributes: add})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("registering the search attributes %v in namespace %s: %w", workflows.SearchAttributes, ns, err)
	}
	return nil
}
