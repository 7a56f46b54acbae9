// Package ring says which node owns a key: a consistent hash ring over the
// cluster's members, with virtual nodes and weights. It wraps
// serialx/hashring behind a small type of our own, so that replacing the
// (unmaintained) library stays local. A Ring is immutable: membership
// changes build a new one, published by the caller through an
// atomic.Pointer.
package ring
