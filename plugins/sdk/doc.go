// Package sdk is everything a Go publisher plugin imports: implement
// Publisher, call Serve from main. gRPC, go-plugin and the wire contract
// (plugins/proto) stay hidden. It imports nothing of the gateway.
//
//	func main() { sdk.Serve(&myPublisher{}) }
//
// A plugin is started by the gateway, never by hand; it logs JSON lines to
// stderr (Logger), which the gateway routes into its own log under the
// plugin's name.
package sdk
