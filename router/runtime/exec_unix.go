//go:build unix

package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// newProcAttr puts the command in a process group of its own, so that
// killTree reaches everything it starts, and runs it as r when r is not nil.
func newProcAttr(r *runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if r != nil {
		a.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: r.groups, NoSetGroups: r.sameUser}
	}
	return a
}

// newRunAs looks up the user name (a name or uid), resolves its ids and
// checks that this process may switch to them.
func newRunAs(name string) (*runAs, *user.User, error) {
	u, err := LookupUser(name)
	if err != nil {
		return nil, nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("%q: uid %q is not numeric", name, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("%q: gid %q is not numeric", name, u.Gid)
	}
	r := &runAs{uid: uint32(uid), gid: uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, nil, fmt.Errorf("%q: look up groups: %w", name, err)
	}
	for _, s := range ids {
		g, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("%q: group id %q is not numeric", name, s)
		}
		r.groups = append(r.groups, uint32(g))
	}
	if err := canRunAs(r); err != nil {
		return nil, nil, fmt.Errorf("%q: %w", name, err)
	}
	return r, u, nil
}

// Capability bits (linux/capability.h): switching to another user needs
// CAP_SETUID and CAP_SETGID, and signalling the command (its timeout, a
// cancelled turn) once it runs as that user needs CAP_KILL.
const (
	capKill   = 5
	capSetgid = 6
	capSetuid = 7
	capsToRun = 1<<capKill | 1<<capSetgid | 1<<capSetuid
)

// canRunAs checks that this process may start commands as r. When r is the
// process's own uid and gid nothing needs switching, and r is marked so
// that the supplementary groups are left alone (setting them would need
// CAP_SETGID).
func canRunAs(r *runAs) error {
	// /proc/self/status exists on Linux only; elsewhere root is the test.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		status = nil
	}
	return checkRunAs(r, os.Geteuid(), os.Getegid(), status)
}

// checkRunAs is canRunAs for a process with the effective ids euid and
// egid and, on Linux, the contents of /proc/self/status (nil elsewhere).
func checkRunAs(r *runAs, euid, egid int, status []byte) error {
	if int64(r.uid) == int64(euid) && int64(r.gid) == int64(egid) {
		r.sameUser = true
		return nil
	}
	if caps, ok := effectiveCaps(status); ok {
		if caps&capsToRun == capsToRun {
			return nil
		}
	} else if euid == 0 {
		return nil
	}
	return fmt.Errorf("the gateway (uid %d) may not run commands as uid %d: "+
		"it needs root or the CAP_SETUID, CAP_SETGID and CAP_KILL capabilities "+
		"(e.g. systemd AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL); "+
		"grant them, or remove exec.user to run the command as the gateway's own user", euid, r.uid)
}

// effectiveCaps reads the CapEff line of a /proc/self/status.
func effectiveCaps(status []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps, err == nil
		}
	}
	return 0, false
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
