package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd's process when this one dies
// without stopping it (SIGKILL leaves no time to): a server left running
// would hold its port and memory and load the next run's machine. The
// kernel sends it when the thread that started the child ends, and the Go
// runtime ends a thread only under a goroutine locked to it, which the one
// calling Start is not.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
