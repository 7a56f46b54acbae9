// Command feeds is an example publisher plugin written against
// meshgate/plugins/sdk only, as a third party would write one. It owns the
// `feeds:` scheme: POST a JSON body to http://$FEEDS_LISTEN/feeds/<name>
// and every queue subscribed to `feeds:<name>` gets a CHANGED notification
// carrying that body. Anyone may read a feed; the etag counts the posts.
//
// Configure it in meshgate's config file:
//
//	plugins:
//	  - {name: feeds, path: /usr/local/bin/feeds, sha256: <sha256sum of the binary>,
//	     env: {FEEDS_LISTEN: "127.0.0.1:9090"}}
package main
