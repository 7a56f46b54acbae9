// Command meshgate is the one binary: `serve` runs the gateway (the
// default), `token` mints a development token.
package main
