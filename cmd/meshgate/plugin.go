package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"meshgate/plugins/builtin/presence"
	"meshgate/plugins/builtin/storage"
	"meshgate/plugins/builtin/user"
	"meshgate/plugins/sdk"
)

// runPlugin serves a built-in publisher over the plugin contract, exactly
// as a third-party plugin would. The gateway starts it; a person never does.
func runPlugin(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: meshgate plugin user|storage|presence")
	}
	if os.Getenv("MESHGATE_PLUGIN") == "" {
		return errors.New("plugin: this is started by meshgate serve, not by hand")
	}
	pub, err := builtinPublisher(args[0], os.Getenv("MESHGATE_DATA_DIR"))
	if err != nil {
		return err
	}
	sdk.Serve(pub)
	return nil
}

func builtinPublisher(name, dataDir string) (sdk.Publisher, error) {
	if dataDir == "" {
		dataDir = "./meshgate-data"
	}
	switch name {
	case "user":
		return user.New(), nil
	case "storage":
		return storage.New(filepath.Join(dataDir, "storage")), nil
	case "presence":
		return presence.New(dataDir), nil
	}
	return nil, fmt.Errorf("plugin: unknown built-in %q", name)
}
