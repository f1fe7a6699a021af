//go:build !unix

package runtime

import (
	"os"
	"syscall"
)

// newProcAttr has nothing to add where process groups are not available.
func newProcAttr() *syscall.SysProcAttr { return nil }

// killTree kills p; without process groups, what it started may survive.
func killTree(p *os.Process) error {
	if p == nil {
		return nil
	}
	return p.Kill()
}
