package host

import (
	"os/exec"
	"syscall"
)

// setDeathSignal asks Linux to kill the plugin when the gateway dies, even
// by kill -9, so that no plugin outlives it.
func setDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
