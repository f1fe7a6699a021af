package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestThreadCountsTheThreadsOwnWork: a thread that spins gains CPU time, and
// one that sleeps gains (almost) none, whatever other threads do meanwhile.
func TestThreadCountsTheThreadsOwnWork(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, ok := Thread()
	if !ok {
		t.Skip("this platform does not report a thread's CPU time")
	}
	// Another goroutine spins on another thread the whole time.
	stop := spin()
	time.Sleep(200 * time.Millisecond)
	slept, _ := Thread()
	stop()
	if d := slept - start; d > 50*time.Millisecond {
		t.Errorf("a thread that slept 200ms used %v of CPU: Thread counts other threads' work", d)
	}
	// Spinning, the thread's time grows, however slowly a loaded machine
	// lets it run.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if spun, _ := Thread(); spun-slept >= 50*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a thread that spun for 10s did not use 50ms of CPU, by Thread")
		}
	}
}

// TestProcessCountsEveryThreadsWork: the process's time grows with the
// work of a goroutine on any thread, not only the calling one's.
func TestProcessCountsEveryThreadsWork(t *testing.T) {
	start, ok := Process()
	if !ok {
		t.Skip("this platform does not report a process's CPU time")
	}
	defer spin()()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if now, _ := Process(); now-start >= 50*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a goroutine that spun for 10s did not add 50ms of CPU to the process, by Process")
		}
		time.Sleep(time.Millisecond)
	}
}

// spin keeps a goroutine busy on a thread of its own (not the caller's)
// until the function it returns is called, which waits for it to stop.
func spin() (stop func()) {
	stopping := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		for {
			select {
			case <-stopping:
				return
			default:
			}
		}
	}()
	return func() { close(stopping); <-done }
}
