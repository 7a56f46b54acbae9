package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"meshgate/server"
)

const usage = `meshgate: a GraphQL subscription gateway

usage:
  meshgate [serve] [flags]     run the gateway (default: https://localhost:8443)
  meshgate token [flags]       mint a development token, printed alone on stdout
  meshgate plugin NAME         run a built-in publisher plugin (the gateway starts these itself)
  meshgate probe --url URL --token T [--cacert F]
                               walk the whole path from outside; exit 1 naming the failed step
  meshgate watch --url URL --token T RESOURCE[@ETAG] ...
                               print notifications as they come; rides through restarts
  meshgate publish --url URL --token T RESOURCE ETAG [JSON]
                               report a change (needs the publish scope); prints queues reached
  meshgate config check [--config FILE]
                               validate a config file, reporting every problem at once

run "meshgate <command> -h" for a command's flags.
`

// run dispatches to a subcommand. It is main without the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "token":
		return token(args, stdout, stderr)
	case "plugin":
		return runPlugin(args)
	case "config":
		return configCommand(args, stdout, stderr)
	case "probe":
		return probe(ctx, args, stdout, stderr)
	case "watch":
		return watch(ctx, args, stdout, stderr)
	case "publish":
		return publishCmd(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./meshgate-data", "data directory holding the development key")
	user := fs.String("user", "", "user id (the token's sub)")
	device := fs.String("device", "", "device id (the token's dev)")
	var scopes multiFlag
	fs.Var(&scopes, "scope", "a scope to grant: publish or admin (repeatable, or comma-separated)")
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" || *device == "" {
		return errors.New("token: --user and --device are required")
	}
	if *ttl <= 0 || *ttl > 365*24*time.Hour {
		return errors.New("token: --ttl must be between 1s and 8760h")
	}
	for _, s := range scopes {
		if s != "publish" && s != "admin" {
			return fmt.Errorf("token: unknown scope %q (want publish or admin)", s)
		}
	}
	key, created, err := server.EnsureDevKey(*dataDir)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "meshgate: created development key %s\n", key.SecretFile)
	}
	tok, err := server.Mint(key, *user, *device, scopes, *ttl, time.Now())
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// multiFlag collects repeated or comma-separated values.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}
