// Package presence is the built-in publisher of the `presence:` scheme:
// `presence:user/<id>` (the user's online devices: `count`, and the sorted
// list `online` while there are at most MaxListed) and
// `presence:device/<user>/<device>` (one device; device ids are scoped by
// user in tokens, so the user is part of the name). The gateway tells it
// when devices come online and go offline.
//
// A user always sees their own devices. Another user may see them if the
// two share a storage folder (presence asks the storage publisher
// `storage:peers/<id>`) or if the policy file allows it: lines of
// `<viewer> <user>` in $MESHGATE_DATA_DIR/presence-policy, `*` matching
// anyone. The gateway's sendInvite to another user follows the same rule.
package presence
