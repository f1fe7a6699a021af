//go:build unix

package runtime

import (
	"errors"
	"os"
	"syscall"
)

// newProcAttr puts the command in a process group of its own, so that
// killTree reaches everything it starts.
func newProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killTree sends SIGKILL to the process group led by p. It returns
// os.ErrProcessDone when the group has no process left.
func killTree(p *os.Process) error {
	if p == nil {
		return nil
	}
	err := syscall.Kill(-p.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	if err != nil {
		// Not a group we may signal: at least stop the command itself.
		return p.Kill()
	}
	return nil
}
