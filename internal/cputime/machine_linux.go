package cputime

import "os"

func machine() (Load, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Load{}, false
	}
	l, err := parseStat(b)
	return l, err == nil
}
