//go:build !linux

package devcluster

import "syscall"

// childProcAttr puts a child in its own process group, so that a Ctrl-C in
// the terminal reaches only the hub, which then stops its children in order.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
