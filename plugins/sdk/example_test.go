package sdk_test

import (
	"context"
	"fmt"
	"strings"

	"meshgate/plugins/sdk"
)

// notes is a whole publisher: each user may read `notes:<own id>/…`.
// A real plugin's main is one line: sdk.Serve(&notes{}).
type notes struct{ version int }

func (*notes) Info() sdk.Info {
	return sdk.Info{Name: "notes", Version: "1.0.0", Schemes: []string{"notes"}}
}

func (n *notes) Authorize(_ context.Context, p sdk.Principal, resource, _ string) (sdk.Decision, error) {
	owner, _, _ := strings.Cut(strings.TrimPrefix(resource, "notes:"), "/")
	if owner != p.User {
		return sdk.Deny("notes are private"), nil
	}
	return sdk.Allow(fmt.Sprint(n.version)), nil
}

func (n *notes) Current(_ context.Context, resources []string) (map[string]string, error) {
	out := map[string]string{}
	for _, r := range resources {
		out[r] = fmt.Sprint(n.version)
	}
	return out, nil
}

func (n *notes) Run(ctx context.Context, h sdk.Host) error {
	// Watch the world; on each change: n.version++ and
	// h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: "notes:alice/todo", Etag: fmt.Sprint(n.version)})
	<-ctx.Done()
	return nil
}

func Example() {
	var p sdk.Publisher = &notes{version: 3}
	ctx := context.Background()
	d, _ := p.Authorize(ctx, sdk.Principal{User: "alice", Device: "laptop"}, "notes:alice/todo", "")
	fmt.Println(d.Allowed, d.Etag)
	d, _ = p.Authorize(ctx, sdk.Principal{User: "bob", Device: "phone"}, "notes:alice/todo", "")
	fmt.Println(d.Allowed, d.Reason)
	// Output:
	// true 3
	// false notes are private
}

func ExampleDeny() {
	d := sdk.Deny("not a member of folder photos")
	fmt.Printf("%v %q\n", d.Allowed, d.Reason)
	// Output: false "not a member of folder photos"
}
