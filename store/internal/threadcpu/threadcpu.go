// Package threadcpu reads the CPU time of the calling goroutine's OS
// thread, for a goroutine that runs locked to its thread
// (runtime.LockOSThread): the time is then the goroutine's own, whatever
// else the machine runs. A figure that other work does not move is what
// makes a cost per message comparable between runs on a busy machine.
package threadcpu

import "time"

// Now returns the CPU time (user and system) the calling thread has used,
// and false where the platform cannot tell (then the time is zero).
func Now() (time.Duration, bool) { return now() }
