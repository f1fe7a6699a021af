// Package cputime reads CPU time: the calling goroutine's OS thread's, for
// a goroutine that runs locked to its thread (runtime.LockOSThread), which
// is then the goroutine's own whatever else the machine runs; and the
// whole process's. A figure that other work does not move is what makes a
// cost per message comparable between runs on a busy machine.
package cputime

import "time"

// Thread returns the CPU time (user and system) the calling thread has
// used, and false where the platform cannot tell (then the time is zero).
func Thread() (time.Duration, bool) { return thread() }

// Process returns the CPU time (user and system) the process has used, and
// false where the platform cannot tell (then the time is zero).
func Process() (time.Duration, bool) { return process() }
