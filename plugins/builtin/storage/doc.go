// Package storage is the built-in publisher of the `storage:` scheme: a
// directory tree on disk stands in for cloud storage. Each directory
// directly under the root is a folder:
//
//   - storage:folders/<name>          its contents (recursive listing)
//   - storage:folders/<name>/members  who may read it
//   - storage:peers/<user>            allowed if the caller shares a folder
//     with <user> (presence asks this)
//
// A folder's members are the user ids in its `.members` file, one per
// line: ids of the token grammar (1-128 bytes of A-Za-z0-9-._@); other
// lines (not UTF-8, spaces, too long) are skipped and reported in the log
// with their line number, and never become members. A `.members` is read
// up to MaxMembersBytes and MaxMembers ids. The etag of the contents is a digest of the listing (paths, sizes,
// modification times); the payload of a change lists what was added,
// modified and removed. Removing a member emits REVOKED for that user on
// both of the folder's resources. Changes are seen through fsnotify,
// debounced per folder, with a periodic rescan as a safety net.
package storage
