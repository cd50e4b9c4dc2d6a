package nsqd

import (
	"errors"
	"sync"
	"sync/atomic"
)

// lazyDiskBackend is the disk queue of a topic or channel that had no files
// when it was created: the go-diskqueue behind it (with its goroutines,
// sync ticker, buffers and files) is opened at the first Put. Most channels
// never spill over to disk, and NSQ's cost of one open disk queue per
// channel is most of the idle CPU and a good part of the memory of a node
// with thousands of channels.
//
// ReadChan is handed out before the queue exists: it is the channel the
// opened queue's forwarder will send on, so a consumer that selected on it
// early sees records without being told the queue opened.
type lazyDiskBackend struct {
	open     func(readChan chan []byte) *diskBackend
	readChan chan []byte
	opened   atomic.Pointer[diskBackend]

	mu     sync.Mutex // serialises opening against Close/Delete
	closed bool
}

func newLazyDiskBackend(open func(readChan chan []byte) *diskBackend) *lazyDiskBackend {
	return &lazyDiskBackend{open: open, readChan: make(chan []byte, readChanBuffer)}
}

var errBackendClosed = errors.New("exiting")

// queue returns the open queue, opening it if create is set.
func (l *lazyDiskBackend) queue(create bool) (*diskBackend, error) {
	if q := l.opened.Load(); q != nil || !create {
		return q, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.opened.Load(); q != nil {
		return q, nil
	}
	if l.closed {
		return nil, errBackendClosed
	}
	q := l.open(l.readChan)
	l.opened.Store(q)
	return q, nil
}

// Put opens the queue on first use.
func (l *lazyDiskBackend) Put(b []byte) error {
	q, err := l.queue(true)
	if err != nil {
		return err
	}
	return q.Put(b)
}

// putMessages is diskBackend.putMessages, opening the queue on first use.
func (l *lazyDiskBackend) putMessages(msgs []*Message) (int, error) {
	q, err := l.queue(true)
	if err != nil {
		return 0, err
	}
	return q.putMessages(msgs)
}

// putEntries is diskBackend.putEntries, opening the queue on first use.
func (l *lazyDiskBackend) putEntries(buf []byte, n int) (int, error) {
	q, err := l.queue(true)
	if err != nil {
		return 0, err
	}
	return q.putEntries(buf, n)
}

// ReadChan is valid before the queue is opened.
func (l *lazyDiskBackend) ReadChan() <-chan []byte { return l.readChan }

// Close closes the queue if it was ever opened; later Puts fail.
func (l *lazyDiskBackend) Close() error {
	return l.finish(func(q *diskBackend) error { return q.Close() })
}

// Delete deletes the queue if it was ever opened (else there are no files).
func (l *lazyDiskBackend) Delete() error {
	return l.finish(func(q *diskBackend) error { return q.Delete() })
}

func (l *lazyDiskBackend) finish(fn func(*diskBackend) error) error {
	l.mu.Lock()
	l.closed = true
	q := l.opened.Load()
	l.mu.Unlock()
	if q == nil {
		return nil
	}
	return fn(q)
}

// Depth is 0 until the queue is opened.
func (l *lazyDiskBackend) Depth() int64 {
	if q := l.opened.Load(); q != nil {
		return q.Depth()
	}
	return 0
}

// Empty empties the queue if it was ever opened.
func (l *lazyDiskBackend) Empty() error {
	if q := l.opened.Load(); q != nil {
		return q.Empty()
	}
	return nil
}

func (l *lazyDiskBackend) isEmpty() bool {
	if q := l.opened.Load(); q != nil {
		return q.isEmpty()
	}
	return true
}
