package devcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrStateDirInUse is returned when another process uses the state directory.
var ErrStateDirInUse = errors.New("state directory in use")

// stateLock is an exclusive flock on StateDir/lock. The kernel releases it when
// the holder exits, however it exits, so a crash never leaves a stale lock.
type stateLock struct {
	dir  string
	file *os.File
}

func acquireStateLock(dir string) (*stateLock, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another hub (pid %s) is running with its state in %s; "+
				"stop it with Ctrl-C first, or give this one another directory with --state-dir",
				ErrStateDirInUse, pidOrUnknown(holder), dir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &stateLock{dir: dir, file: f}, nil
}

func (l *stateLock) release() error {
	// Closing the file releases the flock.
	return l.file.Close()
}

func pidOrUnknown(b []byte) string {
	if pid := string(bytes.TrimSpace(b)); pid != "" {
		return pid
	}
	return "unknown"
}
