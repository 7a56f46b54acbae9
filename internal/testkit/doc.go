// Package testkit holds what the tests of several packages share: a buffer
// that a subprocess writes while the test reads it, and the preamble of
// the tests that run JavaScript under Node. Only _test.go files import it
// (archtest keeps it out of the binaries); it imports nothing of meshgate.
package testkit
