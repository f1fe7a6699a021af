package cputime

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// procStat is the start of a /proc/stat read off a 2-processor Linux VM
// (the format is proc(5)'s), and the same file 2 s of wall time later, in
// which the machine was busy for 300 of 400 ticks: 75% of 2 processors
// for 2 s, 3 s of processor time.
const (
	procStat = `cpu  64034 0 23287 290261 1459 0 3011 148 0 0
cpu0 31865 0 10827 146602 283 0 1403 60 0 0
cpu1 32169 0 12459 143658 1176 0 1608 87 0 0
intr 3126167 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 2
ctxt 6331541
btime 1796669437
processes 9751
procs_running 1
`
	procStatLater = `cpu  64234 0 23337 290351 1469 0 3061 148 0 0
cpu0 31965 0 10852 146647 288 0 1428 60 0 0
cpu1 32269 0 12484 143703 1181 0 1633 87 0 0
intr 3126999 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 2
`
)

func TestParseStat(t *testing.T) {
	a, err := parseStat([]byte(procStat))
	if err != nil {
		t.Fatal(err)
	}
	// busy: user+nice+system+irq+softirq+steal; idle: idle+iowait.
	if want := (Load{busy: 64034 + 23287 + 3011 + 148, all: 64034 + 23287 + 3011 + 148 + 290261 + 1459, cpus: 2}); a != want {
		t.Errorf("parseStat = %+v, want %+v", a, want)
	}
	b, err := parseStat([]byte(procStatLater))
	if err != nil {
		t.Fatal(err)
	}
	if share, cpus := b.Since(a); share != 0.75 || cpus != 2 {
		t.Errorf("Since = %v of %d processors, want 0.75 of 2", share, cpus)
	}
	if got := b.Busy(a, 2*time.Second); got != 3*time.Second {
		t.Errorf("Busy over 2s = %v, want 3s (75%% of 2 processors)", got)
	}
	if share, _ := a.Since(b); share != 0 {
		t.Errorf("Since a later reading = %v, want 0", share)
	}
	if share, _ := a.Since(a); share != 0 {
		t.Errorf("Since itself = %v, want 0", share)
	}
	for name, text := range map[string]string{
		"empty":             "",
		"no processor line": "cpu  1 2 3 4 5 6 7 8 0 0\nintr 1\n",
		"no totals":         "cpu0 1 2 3 4 5 6 7 8 0 0\n",
		"short totals":      "cpu  1 2 3\ncpu0 1 2 3\n",
		"not a number":      "cpu  1 x 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
	} {
		if l, err := parseStat([]byte(text)); err == nil {
			t.Errorf("%s: parseStat = %+v, want an error", name, l)
		} else if !strings.HasPrefix(err.Error(), "cputime: /proc/stat") {
			t.Errorf("%s: error %q does not say what it read", name, err)
		}
	}
}

// TestMachineCountsAnyThreadsWork: the machine's busy time over a spell in
// which a thread of this process spins is at least what that thread used,
// and at most every processor for the whole spell.
func TestMachineCountsAnyThreadsWork(t *testing.T) {
	before, ok := Machine()
	if !ok {
		t.Skip("this platform does not report the machine's load")
	}
	start := time.Now()
	cpu0, _ := Process()
	stop := spin()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now, _ := Process(); now-cpu0 >= 300*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatal("a goroutine that spun for 10s did not use 300ms of CPU, by Process")
		}
	}
	stop()
	cpu1, _ := Process()
	after, _ := Machine()
	wall := time.Since(start)
	busy := after.Busy(before, wall)
	// The kernel counts in ticks (10ms here): allow two per processor.
	slack := time.Duration(2*runtime.NumCPU()) * 10 * time.Millisecond
	if used := cpu1 - cpu0; busy+slack < used {
		t.Errorf("the machine was busy %v while this process used %v", busy, used)
	}
	if _, cpus := after.Since(before); busy > time.Duration(cpus)*wall+slack {
		t.Errorf("the machine was busy %v in %v of wall time on %d processors", busy, wall, cpus)
	}
}
