package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"meshgate/internal/faults"
)

// Plugin configures one publisher plugin.
type Plugin struct {
	// Name identifies the plugin in logs and status.
	Name string `yaml:"name"`
	// Builtin names a plugin built into meshgate ("storage", "presence",
	// "user"); it runs as `meshgate plugin <builtin>`, a subprocess like
	// any other.
	Builtin string `yaml:"builtin,omitempty"`
	// Path and Args run an external plugin. SHA256 (hex) is required for
	// them and checked through go-plugin's SecureConfig at every launch.
	Path   string   `yaml:"path,omitempty"`
	Args   []string `yaml:"args,omitempty"`
	SHA256 string   `yaml:"sha256,omitempty"`
	// Env is added to the plugin's environment, which otherwise holds only
	// PATH, HOME, TMPDIR, LANG and TZ: plugins never see the gateway's secrets.
	Env map[string]string `yaml:"env,omitempty"`
}

// Config configures the host.
type Config struct {
	Plugins []Plugin
	// DataDir is passed to built-in plugins as MESHGATE_DATA_DIR.
	DataDir string
	// CallTimeout bounds every call to a plugin. Default 5 s.
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound restart delays. Defaults 200 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Grace is how long a device stays online after its last stream
	// closes. Default 5 s.
	Grace time.Duration
	// SelfCommand makes the command of a built-in plugin. Default: this
	// executable with arguments `plugin <name>`. Tests re-exec themselves.
	SelfCommand func(builtin string) (*exec.Cmd, error)
	// Logger: default discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Faults injects delays and failures into calls to plugins, to
	// rehearse failure. Off by default; FaultSeed 0 means random.
	Faults    faults.Config
	FaultSeed uint64
	// Owns reports whether this node owns resource, in a cluster. Every
	// node runs the same plugins over the same world, so an event a plugin
	// reports on its own (Watch) is delivered by the resource's owner only,
	// once; events of plugins that follow sessions (presence) and events
	// returned by Publish are delivered by whichever node got them. Nil:
	// this node owns everything.
	Owns func(resource string) bool
}

// Builtins are the plugins built into meshgate.
var Builtins = []string{"user", "storage", "presence"}

// DefaultPlugins is the embedded default: every built-in.
func DefaultPlugins() []Plugin {
	out := make([]Plugin, len(Builtins))
	for i, b := range Builtins {
		out[i] = Plugin{Name: b, Builtin: b}
	}
	return out
}

func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.CallTimeout == 0 {
		c.CallTimeout = 5 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SelfCommand == nil {
		c.SelfCommand = func(b string) (*exec.Cmd, error) {
			exe, err := os.Executable()
			if err != nil {
				return nil, err
			}
			return exec.Command(exe, "plugin", b), nil
		}
	}
	if err := c.Faults.Check(); err != nil {
		errs = append(errs, fmt.Errorf("faults: %w", err))
	}
	names := map[string]bool{}
	schemes := map[string]int{} // scheme → index of the plugin known to own it
	for i, p := range c.Plugins {
		where := fmt.Sprintf("plugins[%d]", i)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		} else if names[p.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is used twice", where, p.Name))
		}
		names[p.Name] = true
		switch {
		case p.Builtin != "" && p.Path != "":
			errs = append(errs, fmt.Errorf("%s: builtin and path exclude each other", where))
		case p.Builtin != "":
			known := false
			for _, b := range Builtins {
				known = known || b == p.Builtin
			}
			if !known {
				errs = append(errs, fmt.Errorf("%s: unknown builtin %q (have %v)", where, p.Builtin, Builtins))
				break
			}
			// A built-in owns the scheme of its name; a second one of the
			// same kind could never register, and would be retried forever.
			if j, dup := schemes[p.Builtin]; dup {
				errs = append(errs, fmt.Errorf("%s.builtin: scheme %q is already owned by plugins[%d] (%s)", where, p.Builtin, j, c.Plugins[j].Name))
				break
			}
			schemes[p.Builtin] = i
		case p.Path != "":
			if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf("%s.sha256: 64 hex digits are required for an external plugin, got %q", where, p.SHA256))
			}
		default:
			errs = append(errs, fmt.Errorf("%s: set builtin or path", where))
		}
	}
	return c, errors.Join(errs...)
}

// Check reports every invalid field at once, without starting anything.
func (c Config) Check() error {
	_, err := c.withDefaults()
	return err
}
