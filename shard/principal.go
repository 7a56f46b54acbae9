package shard

import "slices"

// Scopes a token may grant.
const (
	ScopePublish = "publish"
	ScopeAdmin   = "admin"
)

// Principal is who is calling: a user and one of their devices, with scopes.
type Principal struct {
	User   string
	Device string
	Scopes []string
}

// Has reports whether p was granted scope.
func (p Principal) Has(scope string) bool { return slices.Contains(p.Scopes, scope) }

// owner is the (user, device) pair that owns a queue.
type owner struct{ user, device string }

func ownerOf(p Principal) owner { return owner{p.User, p.Device} }
