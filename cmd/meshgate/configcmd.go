package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"meshgate/plugins/host"
)

// configCommand is `meshgate config check`: every layer validates its part
// of the file without starting anything, and every problem is reported.
func configCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && args[0] == "defaults" {
		return printDefaults(stdout)
	}
	if len(args) == 0 || args[0] != "check" {
		return errors.New("usage: meshgate config check [--config FILE] | meshgate config defaults")
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "meshgate.yaml", "the config file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if err := cfg.check(*path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

// check applies the defaults and validates the whole config, the file's
// own settings and every component's part, without starting anything.
// `config check` and serve both call it, so a config that one accepts the
// other starts. Every problem is reported at once, each on its own line
// with the file (or "flags") and its key.
func (c *fileConfig) check(path string) error {
	where := "flags"
	if path != "" {
		where = path
	}
	log := slog.New(slog.DiscardHandler)
	errs := eachError("", c.validate(path))
	errs = append(errs, eachError(where+": queues: ", c.Store.Check())...)
	errs = append(errs, eachError(where+": limits: ", c.Server.serverConfig(log).Check())...)
	errs = append(errs, eachError(where+": ", c.CORS.Check())...)
	if c.Plugins != nil {
		errs = append(errs, eachError(where+": ", (host.Config{Plugins: c.Plugins}).Check())...)
	}
	return errors.Join(errs...)
}

// eachError splits err into the errors it joins, each prefixed with
// prefix, so that every line of the report names its file and section.
func eachError(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // splitting errors.Join's list, not matching an error
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, eachError(prefix, e)...)
		}
		return out
	}
	if prefix == "" {
		return []error{err}
	}
	return []error{fmt.Errorf("%s%w", prefix, err)}
}
