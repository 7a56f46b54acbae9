// Package archtest holds tests about the shape of the module itself: which
// package may import which. It has no code of its own.
package archtest
