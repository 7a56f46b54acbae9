// Package builtin holds the publishers built into meshgate: user, storage
// and presence. Each runs as a plugin subprocess (`meshgate plugin
// <name>`), through exactly the path a third-party plugin takes, and uses
// only plugins/sdk.
package builtin
