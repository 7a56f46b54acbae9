// Package faults injects delays and failures on purpose, so that operators
// can test their monitors and see the system degrade gracefully. It is off
// unless configured. It knows nothing of where it is used: server wraps the
// HTTP pipeline with it, plugins/host its calls to publishers.
package faults
