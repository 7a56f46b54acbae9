// Package genqlienttest holds genqlient-generated operations (generated.go,
// from operations.graphql and ../../schema.graphqls) for a test that runs
// github.com/Khan/genqlient, a client meshgate users have, against a real
// gateway. Nothing imports it but its own test.
package genqlienttest

//go:generate go tool genqlient genqlient.yaml
