package cputime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Load is a reading of how the machine's processors have spent their time
// since boot: busy (running anything: processes, the kernel, interrupts)
// or idle, in the kernel's ticks, summed over its processors. Two
// readings tell what share of the machine was busy between them, whoever
// kept it busy: on a machine a benchmark shares with what it measures,
// that share says whether the machine itself was the limit.
type Load struct {
	busy, all uint64 // ticks
	cpus      int
}

// Machine reads the machine's Load, and false where the platform cannot
// tell (Linux's /proc/stat is read).
func Machine() (Load, bool) { return machine() }

// Since returns the share of the machine's processor time that was busy
// between earlier and l (0 to 1), and how many processors it has; a share
// of 0 when no tick passed.
func (l Load) Since(earlier Load) (share float64, cpus int) {
	if l.all <= earlier.all || l.busy < earlier.busy {
		return 0, l.cpus
	}
	return float64(l.busy-earlier.busy) / float64(l.all-earlier.all), l.cpus
}

// Busy returns the processor time the machine spent busy between earlier
// and l, wall apart: its busy share of the wall time on every processor.
// It is measured in ticks and converted through the wall time, so the
// kernel's tick rate need not be known.
func (l Load) Busy(earlier Load, wall time.Duration) time.Duration {
	share, cpus := l.Since(earlier)
	return time.Duration(share * float64(cpus) * float64(wall))
}

// parseStat reads a Load from the text of Linux's /proc/stat: its "cpu"
// line, the machine's totals (user, nice, system, idle, iowait, irq,
// softirq, steal, then guest times already counted in user and nice), and
// one "cpuN" line per processor.
func parseStat(b []byte) (Load, error) {
	var l Load
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // the "intr" line is long
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), " ")
		switch {
		case name == "cpu":
			f := strings.Fields(rest)
			if len(f) < 4 {
				return Load{}, fmt.Errorf("cputime: /proc/stat: the cpu line has %d fields, want at least 4", len(f))
			}
			var t [8]uint64 // user nice system idle iowait irq softirq steal
			for i := 0; i < len(t) && i < len(f); i++ {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return Load{}, fmt.Errorf("cputime: /proc/stat: cpu field %d: %w", i+1, err)
				}
				t[i] = v
			}
			idle := t[3] + t[4]
			l.busy = t[0] + t[1] + t[2] + t[5] + t[6] + t[7]
			l.all = l.busy + idle
			found = true
		case strings.HasPrefix(name, "cpu"):
			if _, err := strconv.Atoi(name[len("cpu"):]); err == nil {
				l.cpus++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Load{}, fmt.Errorf("cputime: /proc/stat: %w", err)
	}
	if !found || l.cpus == 0 {
		return Load{}, errors.New("cputime: /proc/stat has no cpu totals or no processor")
	}
	return l, nil
}
