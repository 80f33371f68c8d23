package devcluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// stopLeftoverProcesses stops control-plane processes that an earlier run
// with the same state directory left behind when it was killed (SIGKILL gives
// it no chance to stop its children). They are recognised by the state
// directory in their command line; the caller holds the directory's lock, so
// no live run owns them.
func stopLeftoverProcesses(stateDir string) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil //nolint:nilerr // no /proc: nothing we can find
	}
	marker := []byte(stateDir + string(filepath.Separator))
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, marker) || !isControlPlaneBinary(cmdline) {
			continue
		}
		pids = append(pids, pid)
	}
	// etcd survives SIGKILL intact (its WAL is crash-safe) and nothing else
	// of a dead run is worth a graceful stop.
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d from an earlier run still uses %s", pid, stateDir)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// isControlPlaneBinary reports whether a command line runs one of Binaries,
// so that nothing else that merely mentions the state directory is touched.
func isControlPlaneBinary(cmdline []byte) bool {
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	name := filepath.Base(string(argv0))
	for _, b := range Binaries {
		if name == b {
			return true
		}
	}
	return false
}

// alive reports whether a process exists and is not a zombie waiting for its
// new parent to reap it.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
