package threadcpu

import (
	"runtime"
	"testing"
	"time"
)

// TestNowCountsTheThreadsOwnWork: a thread that spins gains CPU time, and
// one that sleeps gains (almost) none, whatever other threads do meanwhile.
func TestNowCountsTheThreadsOwnWork(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, ok := Now()
	if !ok {
		t.Skip("this platform does not report a thread's CPU time")
	}
	// Another goroutine spins on another thread the whole time.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	slept, _ := Now()
	close(stop)
	<-done
	if d := slept - start; d > 50*time.Millisecond {
		t.Errorf("a thread that slept 200ms used %v of CPU: Now counts other threads' work", d)
	}
	// Spinning, the thread's time grows, however slowly a loaded machine
	// lets it run.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if spun, _ := Now(); spun-slept >= 50*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a thread that spun for 10s did not use 50ms of CPU, by Now")
		}
	}
}
