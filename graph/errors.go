package graph

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"meshgate/shard"
)

// Error codes sent in extensions.code. Clients branch on these, never on messages.
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeQueueNotFound   = "QUEUE_NOT_FOUND"
	CodeDeviceNotFound  = "DEVICE_NOT_FOUND"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeLimitExceeded   = "LIMIT_EXCEEDED"
	CodeUnavailable     = "UNAVAILABLE"
	CodeTimeout         = "TIMEOUT"
	CodeCancelled       = "CANCELLED"
	CodeBadRequest      = "BAD_REQUEST"
	CodeInternal        = "INTERNAL_SERVER_ERROR"
)

// ErrUnauthenticated: the request carries no valid principal.
var ErrUnauthenticated = errors.New("graph: unauthenticated")

// MsgUnavailable is the one message of every UNAVAILABLE error: the
// membership is moving, or a node or a publisher cannot be reached.
const MsgUnavailable = "temporarily unavailable (the cluster is changing or a node or publisher cannot be reached): retry"

// Code returns the extensions.code for err and the message to show. It is
// the one place where core errors become public codes; unknown errors
// become INTERNAL_SERVER_ERROR with a message that reveals nothing.
func Code(err error) (code, msg string) {
	switch {
	case errors.Is(err, shard.ErrQueueNotFound):
		// Another device's queue gets exactly this answer too: a queue
		// name's existence is never revealed to someone who does not own it.
		return CodeQueueNotFound, "queue not found"
	case errors.Is(err, shard.ErrDeviceNotFound):
		return CodeDeviceNotFound, "the device has no queue"
	case errors.Is(err, ErrUnauthenticated):
		return CodeUnauthenticated, "authentication required"
	case errors.Is(err, shard.ErrForbidden):
		return CodeForbidden, trim(err)
	case errors.Is(err, shard.ErrLimitExceeded):
		return CodeLimitExceeded, trim(err)
	case errors.Is(err, shard.ErrInvalidInput), errors.Is(err, shard.ErrUnknownScheme):
		return CodeBadUserInput, trim(err)
	case errors.Is(err, shard.ErrUnavailable):
		// The cause names nodes, addresses, queues and TLS or gRPC
		// failures: internal detail, logged by errorf, never sent.
		return CodeUnavailable, MsgUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout, "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return CodeCancelled, "request cancelled"
	}
	return CodeInternal, "internal error"
}

// trim strips the package prefixes ("shard: ") that sentinels carry, which
// mean nothing to a client.
func trim(err error) string {
	return strings.NewReplacer("shard: ", "", "graph: ", "").Replace(err.Error())
}

// errorf maps err from the core to a GraphQL error with its code. Resolvers
// return only what it makes, so every error of theirs carries a code;
// unknown errors are logged here and hidden.
func (r *Resolver) errorf(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	code, msg := Code(err)
	switch {
	case r.Logger == nil:
	case code == CodeInternal:
		r.Logger.ErrorContext(ctx, "internal error", "err", err)
	case code == CodeUnavailable:
		r.Logger.WarnContext(ctx, "answered unavailable", "err", err)
	}
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// NewErrorPresenter returns gqlgen's error presenter: every error leaves
// with an extensions.code. Resolver errors already carry one (see errorf);
// errors gqlgen raised itself (parse, validation, argument coercion) are
// the client's and get BAD_USER_INPUT unless gqlgen set a code.
func NewErrorPresenter() graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		out := graphql.DefaultErrorPresenter(ctx, err)
		var inner *gqlerror.Error
		if errors.As(err, &inner) && inner != out && inner.Extensions["code"] != nil {
			out.Message = inner.Message
			out.Extensions = withCode(out.Extensions, inner.Extensions["code"].(string))
		}
		if out.Extensions == nil || out.Extensions["code"] == nil {
			out.Extensions = withCode(out.Extensions, CodeBadUserInput)
		}
		return out
	}
}

func withCode(ext map[string]any, code string) map[string]any {
	if ext == nil {
		ext = make(map[string]any, 1)
	}
	ext["code"] = code
	return ext
}

// Recover is gqlgen's RecoverFunc: a panic in a resolver becomes an
// INTERNAL_SERVER_ERROR for that request, and the process keeps serving.
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		log.ErrorContext(ctx, "resolver panic", "panic", v)
		return &gqlerror.Error{Message: "internal error", Extensions: map[string]any{"code": CodeInternal}}
	}
}
