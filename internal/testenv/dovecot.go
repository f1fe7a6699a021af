package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// DovecotBinary is where Debian's dovecot-core installs the server.
const DovecotBinary = "/usr/sbin/dovecot"

// Dovecot starts a private Dovecot IMAP server for t on a free loopback
// port and returns its address, a user's credentials and the user's maildir.
// The server is stopped, and its files removed, when t ends. Plaintext login
// without TLS is allowed: it listens on 127.0.0.1 only. It calls Missing
// when Dovecot is not installed (apt-get install dovecot-imapd).
//
// Dovecot 2.3 is run as root with a static userdb that maps every user to
// the unprivileged "mail" account, which owns the maildir.
func Dovecot(t testing.TB) (addr, username, password, maildir string) {
	t.Helper()
	if _, err := os.Stat(DovecotBinary); err != nil {
		Missing(t, "Dovecot is not installed at %s (apt-get install dovecot-imapd)", DovecotBinary)
		return
	}
	uid, gid := 8, 8
	if u, err := user.Lookup("mail"); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	dir := t.TempDir()
	// Dovecot's auth and mail processes run as other users: the test's
	// temp dirs (created 0700 by the testing package) must be searchable.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("testenv: dovecot: %v", err)
		}
	}
	home := filepath.Join(dir, "home")
	maildir = filepath.Join(home, "Maildir")
	for _, d := range []string{home, maildir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatalf("testenv: dovecot: %v", err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			Missing(t, "cannot give the maildir to the mail user (uid %d): %v; Dovecot tests run as root", uid, err)
			return
		}
	}
	username, password = "bot", "test-password"
	passwd := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwd, []byte(username+":{PLAIN}"+password+"::::::\n"), 0o644); err != nil {
		t.Fatalf("testenv: dovecot: %v", err)
	}
	port := freePort(t)
	conf := filepath.Join(dir, "dovecot.conf")
	cfg := fmt.Sprintf(`protocols = imap
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:%[2]s
first_valid_uid = 1
first_valid_gid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[3]s
}
userdb {
  driver = static
  args = uid=%[4]d gid=%[5]d home=%[6]s
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[7]d
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
`, dir, maildir, passwd, uid, gid, home, port)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatalf("testenv: dovecot: %v", err)
	}
	cmd := exec.Command(DovecotBinary, "-F", "-c", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: dovecot: start: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("testenv: dovecot log:\n%s", log)
		}
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, username, password, maildir
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("testenv: dovecot exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("testenv: dovecot did not listen on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
