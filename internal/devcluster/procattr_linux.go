package devcluster

import "syscall"

// childProcAttr puts a child in its own process group, so that a Ctrl-C in
// the terminal reaches only the hub (which then stops its children in order),
// and has the kernel kill the child if the hub dies without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
