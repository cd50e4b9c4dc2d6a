//go:build linux

package main

import (
	"runtime"
	"syscall"
	"time"
)

const prSetTimerslack = 29 // PR_SET_TIMERSLACK

// preciseSleeper returns a sleep function for the calling goroutine, which
// it locks to its OS thread. time.Sleep wakes up about 1 ms late on Linux,
// too coarse for a 100 µs schedule, so the thread sleeps in nanosleep(2)
// with its timer slack lowered from the default 50 µs to 1 ns. The sleep
// may return early (EINTR from the runtime's preemption signal); callers
// sleep in a loop until their due time.
func preciseSleeper() func(time.Duration) {
	runtime.LockOSThread()
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
	return func(d time.Duration) {
		ts := syscall.NsecToTimespec(int64(d))
		syscall.Nanosleep(&ts, nil)
	}
}
