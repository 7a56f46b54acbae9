// Package model holds the GraphQL types that gqlgen binds to: the scalars
// Seq and JSON, and the Notification and Queue objects. models_gen.go is
// generated from schema.graphqls; the rest is written by hand.
package model
