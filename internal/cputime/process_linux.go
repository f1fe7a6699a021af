package cputime

import (
	"time"

	"golang.org/x/sys/unix"
)

func process() (time.Duration, bool) { return usage(unix.RUSAGE_SELF) }
