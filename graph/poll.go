package graph

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/graph/model"
	"meshgate/shard"
)

// DefaultPollLinger is the least time a long-poll whose page is not full
// is held after it arrived (Resolver.PollLinger).
const DefaultPollLinger = 20 * time.Millisecond

// pollPace is the linger each long-poll in flight adds, per core: about
// three times what a poll answer costs on a small machine (60-70 µs of
// CPU, most of it net/http and the collector), so that answering every
// reader that re-polls at once takes at most a third of each core and
// publishes and streams keep the rest. With 2 000 readers on one core the
// linger is 400 ms; maxPollLinger caps it. A larger pace means fuller
// pages and later answers: at 100 µs the 2 000 readers of POLL got 10-20
// notifications a page and the poll cost 3.8-7 CPU-s per million
// deliveries, at 200 µs 29-52 and 2-3.2 on a quiet core (BENCHMARKS.md,
// "POLL"). It assumes the gateway has its cores: when other processes
// take them, rounds outlast the linger again.
const (
	pollPace      = 200 * time.Microsecond
	maxPollLinger = time.Second
)

// pollLinger returns how long a long-poll whose page is not full is held
// after it arrived, with inflight long-polls on this gateway (0: not at
// all). Safe for concurrent use.
func (r *Resolver) pollLinger(inflight int64) time.Duration {
	base := r.PollLinger
	switch {
	case base < 0:
		return 0
	case base == 0:
		base = DefaultPollLinger
	}
	paced := time.Duration(inflight) * pollPace / time.Duration(runtime.GOMAXPROCS(0))
	return min(max(base, paced), max(base, maxPollLinger))
}

// page reads a queue for the `notifications` query, with the arguments as
// the generated code passes them (nil: the schema's default).
//
// A long-poll (waitSeconds > 0) whose page is not full is answered no
// sooner than its linger after it arrived: what lands meanwhile rides in
// the same answer. The linger is PollLinger, or more when many long-polls
// are in flight: pollPace each per core, so the readers that re-poll as
// soon as they are answered are answered at most about 5 000 times a
// second per core while notifications keep coming. A reader that waits
// longer (a quiet queue) is answered the moment its first notification
// lands, as before; a full page and wait 0 are answered at once.
//
// Without it, thousands of readers of one resource are answered one
// notification each and re-poll at once, and their requests, served in
// arrival order on a busy core, keep the publisher's waiting for a whole
// round of them: every page carried one notification and a poll cost 40
// times a WebSocket delivery (BENCHMARKS.md, "POLL"). A fixed linger is
// not enough: once a round of answers takes longer than the linger, the
// core never idles and the publisher is starved again.
func (r *Resolver) page(ctx context.Context, queue string, after *model.Seq, limit, waitSeconds *int) (shard.Page, error) {
	p, err := principal(ctx)
	if err != nil {
		return shard.Page{}, r.errorf(ctx, err)
	}
	var a uint64
	if after != nil {
		a = uint64(*after)
	}
	lim, wait := 100, 0
	if limit != nil {
		lim = *limit
	}
	if waitSeconds != nil {
		wait = *waitSeconds
	}
	start := time.Now()
	if wait > 0 {
		r.longPolls.Add(1)
		defer r.longPolls.Add(-1)
	}
	pg, err := r.Backend.Poll(ctx, p, queue, a, lim, time.Duration(wait)*time.Second)
	if err != nil {
		return shard.Page{}, r.errorf(ctx, err)
	}
	if wait <= 0 || len(pg.Items) == 0 || len(pg.Items) >= lim {
		return pg, nil
	}
	d := r.pollLinger(r.longPolls.Load()) - time.Since(start)
	if d <= 0 {
		return pg, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return pg, nil
	}
	// The same read again, now with what followed. Should it fail (the
	// queue deleted meanwhile), the page read a moment ago is still a
	// true answer; the next poll reports the error.
	if more, err := r.Backend.Poll(ctx, p, queue, a, lim, 0); err == nil {
		return more, nil
	}
	return pg, nil
}

// PollOp is a validated operation that is one `notifications` query and
// nothing else, with its arguments read as the generated code reads them
// and its selection compiled.
type PollOp struct {
	alias       string
	pos         *ast.Position
	queue       string
	after       *model.Seq
	limit, wait *int
	fields      []pageField
}

// pageField is a selected field of NotificationPage.
type pageField struct {
	alias, name string
	items       *Plan // for items: a bare Notification object per item
}

// ParsePollOp recognises a validated operation that is exactly one
// `notifications` query (any alias, variables or literals, fragments,
// @skip/@include already applied) and compiles its selection. ok is false
// for anything else, and for arguments the generated code would refuse:
// those go through gqlgen, which gives its own answer.
func ParsePollOp(opCtx *graphql.OperationContext) (op PollOp, ok bool) {
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query {
		return PollOp{}, false
	}
	root := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"})
	if len(root) != 1 || root[0].Name != "notifications" {
		return PollOp{}, false
	}
	f := root[0]
	args := f.ArgumentMap(opCtx.Variables)
	var err error
	if op.queue, err = graphql.UnmarshalString(args["queue"]); err != nil {
		return PollOp{}, false
	}
	if v := args["after"]; v != nil {
		op.after = new(model.Seq)
		if err := op.after.UnmarshalGQL(v); err != nil {
			return PollOp{}, false
		}
	}
	for _, a := range []struct {
		name string
		dst  **int
	}{{"limit", &op.limit}, {"waitSeconds", &op.wait}} {
		if v := args[a.name]; v != nil {
			n, err := graphql.UnmarshalInt(v)
			if err != nil {
				return PollOp{}, false
			}
			*a.dst = &n
		}
	}
	for _, pf := range graphql.CollectFields(opCtx, f.Selections, []string{"NotificationPage"}) {
		field := pageField{alias: pf.Alias, name: pf.Name}
		if pf.Name == "items" {
			field.items = compileItem(opCtx, pf)
		}
		op.fields = append(op.fields, field)
	}
	op.alias, op.pos = f.Alias, f.Position
	return op, true
}

// ExecPoll runs op through the `notifications` query's resolver and
// returns the response gqlgen's executor would have made for it: the page
// under the field's alias, each notification encoded once per selection
// however many queues hold it (Plan), or the resolver's error as
// ExecPublish makes it.
//
// The Data of a response without errors is what json.Marshal would make
// of it (compact, HTML characters escaped), so a transport may write
// {"data":Data} without marshalling it again.
//
// It skips gqlgen's execution, which builds a model and a field context
// per notification and per field: the larger part of a poll's CPU.
func (r *Resolver) ExecPoll(ctx context.Context, op PollOp, present graphql.ErrorPresenterFunc, recov graphql.RecoverFunc) (resp *graphql.Response) {
	defer func() {
		if v := recover(); v != nil {
			resp = fieldError(ctx, recov(ctx, v), op.alias, nil, present)
		}
	}()
	pg, err := r.page(ctx, op.queue, op.after, op.limit, op.wait)
	if err != nil {
		return fieldError(ctx, err, op.alias, op.pos, present)
	}
	size := 64
	for _, n := range pg.Items {
		size += 160 + len(n.Payload)
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	b = appendString(b, op.alias)
	b = append(b, ":{"...)
	for i, f := range op.fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, f.alias)
		b = append(b, ':')
		switch f.name {
		case "items":
			b = append(b, '[')
			for j, n := range pg.Items {
				if j > 0 {
					b = append(b, ',')
				}
				b = f.items.Encode(b, n)
			}
			b = append(b, ']')
		case "lastSeq":
			b = strconv.AppendUint(b, pg.LastSeq, 10)
		case "hasMore":
			b = strconv.AppendBool(b, pg.HasMore)
		case "__typename":
			b = append(b, `"NotificationPage"`...)
		default:
			b = append(b, "null"...) // unreachable after validation
		}
	}
	b = append(b, "}}"...)
	return &graphql.Response{Data: b}
}

// fieldError is the response gqlgen's executor makes when the one root
// field of an operation fails, as its resolveField does: the error gets
// the field's path, and its location when pos is given (a resolver
// error; a recovered panic has none), goes through present, and data is
// null, since every root field here is non-null.
func fieldError(ctx context.Context, err error, alias string, pos *ast.Position, present graphql.ErrorPresenterFunc) *graphql.Response {
	var gerr *gqlerror.Error
	if !errors.As(err, &gerr) {
		gerr = gqlerror.WrapPath(nil, err)
	}
	if gerr.Path == nil {
		gerr.Path = ast.Path{ast.PathName(alias)}
	}
	if pos != nil && gerr.Locations == nil && pos.Line != 0 {
		gerr.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
	}
	return &graphql.Response{Errors: gqlerror.List{present(ctx, gerr)}, Data: json.RawMessage("null")}
}
