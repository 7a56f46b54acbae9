package presence

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"meshgate/plugins/sdk"
)

// MaxListed is the most devices `presence:user/<id>` lists by name. Above
// it the payload carries only the count, so that a user with thousands of
// devices (a fleet of bots) costs each change O(1) rather than a list
// of thousands.
const MaxListed = 256

// Publisher serves `presence:`.
type Publisher struct {
	policyFile string
	host       sdk.Host
	hostSet    chan struct{}
	changes    chan change

	mu      sync.Mutex
	online  map[string]map[string]bool // user → devices
	version map[string]uint64          // user → etag counter
}

type change struct {
	user, device string
	online       bool
}

// New returns a publisher reading its policy from dataDir.
func New(dataDir string) *Publisher {
	return &Publisher{
		policyFile: filepath.Join(dataDir, "presence-policy"),
		hostSet:    make(chan struct{}),
		changes:    make(chan change, 4096),
		online:     make(map[string]map[string]bool),
		version:    make(map[string]uint64),
	}
}

// Info implements sdk.Publisher.
func (*Publisher) Info() sdk.Info {
	return sdk.Info{Name: "presence", Version: "1.0.0", Schemes: []string{"presence"}}
}

// parse splits a presence resource into the user and device it names.
func parse(resource string) (user, device string, ok bool) {
	path, _ := strings.CutPrefix(resource, "presence:")
	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 2 && parts[0] == "user":
		return parts[1], "", true
	case len(parts) == 3 && parts[0] == "device":
		return parts[1], parts[2], true
	}
	return "", "", false
}

func (p *Publisher) etag(user, device string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if device == "" {
		return fmt.Sprintf("v%d", p.version[user])
	}
	if p.online[user][device] {
		return fmt.Sprintf("on-%d", p.version[user])
	}
	return fmt.Sprintf("off-%d", p.version[user])
}

// Authorize applies the visibility rule.
func (p *Publisher) Authorize(ctx context.Context, who sdk.Principal, resource, _ string) (sdk.Decision, error) {
	user, device, ok := parse(resource)
	if !ok {
		return sdk.Deny("presence resources are presence:user/<id> and presence:device/<user>/<device>"), nil
	}
	if user == who.User || p.policyAllows(who.User, user) {
		return sdk.Allow(p.etag(user, device)), nil
	}
	select {
	case <-p.hostSet:
	case <-ctx.Done():
		return sdk.Decision{}, ctx.Err()
	}
	d, err := p.host.Authorize(ctx, who, "storage:peers/"+user, "")
	if err == nil && d.Allowed {
		return sdk.Allow(p.etag(user, device)), nil
	}
	return sdk.Deny("you share no folder with " + user), nil
}

func (p *Publisher) policyAllows(viewer, user string) bool {
	f, err := os.Open(p.policyFile)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 2 && !strings.HasPrefix(fs[0], "#") && (fs[0] == viewer || fs[0] == "*") && (fs[1] == user || fs[1] == "*") {
			return true
		}
	}
	return false
}

// Current implements sdk.Publisher.
func (p *Publisher) Current(_ context.Context, resources []string) (map[string]string, error) {
	out := make(map[string]string, len(resources))
	for _, r := range resources {
		if u, d, ok := parse(r); ok {
			out[r] = p.etag(u, d)
		}
	}
	return out, nil
}

// Session records a device going online or offline.
func (p *Publisher) Session(who sdk.Principal, online bool, _ time.Time) {
	select {
	case p.changes <- change{who.User, who.Device, online}:
	default:
		sdk.Logger().Warn("presence: session backlog full, dropping", "user", who.User)
	}
}

// Run applies session changes and emits them.
func (p *Publisher) Run(ctx context.Context, h sdk.Host) error {
	p.host = h
	close(p.hostSet)
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-p.changes:
			p.mu.Lock()
			devs := p.online[c.user]
			if devs == nil {
				devs = make(map[string]bool)
				p.online[c.user] = devs
			}
			if devs[c.device] == c.online {
				p.mu.Unlock()
				continue
			}
			if c.online {
				devs[c.device] = true
			} else {
				delete(devs, c.device)
			}
			p.version[c.user]++
			count := len(devs)
			var list []string
			if count <= MaxListed {
				list = make([]string, 0, count)
				for d := range devs {
					list = append(list, d)
				}
			}
			p.mu.Unlock()
			user := map[string]any{"user": c.user, "count": count}
			if list != nil {
				slices.Sort(list)
				user["online"] = list
			}
			userPayload, _ := json.Marshal(user)
			devPayload, _ := json.Marshal(map[string]any{"user": c.user, "device": c.device, "online": c.online})
			_ = h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: "presence:user/" + c.user, Etag: p.etag(c.user, ""), Payload: userPayload})
			_ = h.Emit(ctx, sdk.Event{Kind: sdk.Changed, Resource: "presence:device/" + c.user + "/" + c.device, Etag: p.etag(c.user, c.device), Payload: devPayload})
		}
	}
}
