package testenv

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

func TestDovecotAcceptsLogin(t *testing.T) {
	addr, user, pass, maildir := Dovecot(t)
	if maildir == "" {
		t.Fatal("no maildir")
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting %q: %v", greeting, err)
	}
	if _, err := c.Write([]byte("a1 LOGIN " + user + " " + pass + "\r\na2 SELECT INBOX\r\n")); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "a1 ") && !strings.HasPrefix(line, "a1 OK") {
			t.Fatalf("login: %q", line)
		}
		if strings.HasPrefix(line, "a2 ") {
			if !strings.HasPrefix(line, "a2 OK") {
				t.Fatalf("select: %q", line)
			}
			return
		}
	}
}
