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
	if len(args) == 0 || args[0] != "check" {
		return errors.New("usage: meshgate config check [--config FILE]")
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
	log := slog.New(slog.DiscardHandler)
	var errs []error
	if err := cfg.validate(*path); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Store.shardConfig(log).Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: queues: %w", *path, err))
	}
	if err := cfg.Server.serverConfig(log).Check(); err != nil {
		errs = append(errs, fmt.Errorf("%s: limits: %w", *path, err))
	}
	if cfg.Plugins != nil {
		if err := (host.Config{Plugins: cfg.Plugins}).Check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", *path, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}
