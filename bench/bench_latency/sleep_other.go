//go:build !linux

package main

import "time"

// preciseSleeper falls back to time.Sleep outside Linux.
func preciseSleeper() func(time.Duration) { return time.Sleep }
