//go:build !linux

package cputime

func machine() (Load, bool) { return Load{}, false }
