//go:build unix

package runtime

import (
	"strings"
	"testing"
)

func TestCheckRunAsNeedsTheRightToSwitch(t *testing.T) {
	const (
		noCaps   = "Name:\tswitchboard\nCapEff:\t0000000000000000\n"
		setuid   = "CapEff:\t0000000000000080\n" // CAP_SETUID only
		noKill   = "CapEff:\t00000000000000c0\n" // CAP_SETUID and CAP_SETGID
		allThree = "CapEff:\t00000000000000e0\n" // and CAP_KILL
		rootCaps = "CapEff:\t000001ffffffffff\n"
	)
	for _, tc := range []struct {
		name       string
		euid, egid int
		status     string
		ok         bool
	}{
		{"root with every capability", 0, 0, rootCaps, true},
		{"unprivileged user with the three capabilities", 1000, 1000, allThree, true},
		{"unprivileged user that could switch but not stop the command", 1000, 1000, noKill, false},
		{"root without capabilities (a restricted container)", 0, 0, noCaps, false},
		{"unprivileged user", 1000, 1000, noCaps, false},
		{"setuid without setgid", 1000, 1000, setuid, false},
		{"root where there is no /proc", 0, 0, "", true},
		{"unprivileged user where there is no /proc", 1000, 1000, "", false},
		{"its own user needs no switch", 65534, 65534, noCaps, true},
	} {
		r := &runAs{uid: 65534, gid: 65534, groups: []uint32{65534}}
		var status []byte
		if tc.status != "" {
			status = []byte(tc.status)
		}
		err := checkRunAs(r, tc.euid, tc.egid, status)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "CAP_SETUID")) {
			t.Errorf("%s: err = %v, want a refusal that names CAP_SETUID", tc.name, err)
		}
		if want := tc.euid == 65534; tc.ok && r.sameUser != want {
			t.Errorf("%s: sameUser = %v, want %v", tc.name, r.sameUser, want)
		}
	}
}
