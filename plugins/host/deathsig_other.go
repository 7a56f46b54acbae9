//go:build !linux

package host

import "os/exec"

// setDeathSignal: elsewhere plugins notice their parent is gone (plugins/sdk).
func setDeathSignal(*exec.Cmd) {}
