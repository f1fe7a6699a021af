//go:build !unix

package runtime

import (
	"fmt"
	"os"
	"os/user"
	goruntime "runtime"
	"syscall"
)

// newProcAttr has nothing to add where process groups are not available.
// r is always nil here: canRunAs refuses every user.
func newProcAttr(r *runAs) *syscall.SysProcAttr { return nil }

// newRunAs refuses: running a command as another user needs unix
// credentials.
func newRunAs(name string) (*runAs, *user.User, error) {
	return nil, nil, fmt.Errorf("exec.user is not supported on %s: remove it to run the command as the gateway's own user", goruntime.GOOS)
}

// killTree kills p; without process groups, what it started may survive.
func killTree(p *os.Process) error {
	if p == nil {
		return nil
	}
	return p.Kill()
}
