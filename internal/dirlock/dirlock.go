// Package dirlock takes an exclusive, non-blocking flock on a directory so two
// daemons cannot share one data path (D-LOCK-01).
package dirlock

import (
	"fmt"
	"os"
	"syscall"
)

// DirLock is a held (or not yet taken) lock on a directory.
type DirLock struct {
	dir string
	f   *os.File
}

// New prepares a lock on dir; nothing is taken until Lock.
func New(dir string) *DirLock { return &DirLock{dir: dir} }

// Lock opens the directory and flocks it exclusively without blocking.
func (l *DirLock) Lock() error {
	f, err := os.Open(l.dir)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("cannot flock directory %s - %w (possibly in use by another instance of nsqd)", l.dir, err)
	}
	l.f = f
	return nil
}

// Unlock releases the lock.
func (l *DirLock) Unlock() error {
	if l.f == nil {
		return nil
	}
	defer func() { l.f = nil }()
	return l.f.Close()
}
