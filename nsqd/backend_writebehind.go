package nsqd

import (
	"encoding/binary"
	"sync"
	"time"
)

// writeBehindBackend sits in front of the disk queue of a topic or channel
// whose memory queue has room (--mem-queue-size > 0). A freshly published
// message that finds the memory queue full is appended to a buffer and the
// publisher is answered at once; within writeBehindDelay the buffer goes to
// go-diskqueue as one batch record (message_batch.go).
//
// Why: go-diskqueue takes every Put through its goroutine and a write(2),
// which cost a single PUB on a spilling channel ~15 µs of its round trip
// (23–25k PUB/s on one connection against 38–40k while the memory queue
// had room). Batched, a spilled PUB costs the same as one kept in memory.
//
// What a client can tell: nothing. NSQ answers a PUB as soon as the
// message is in a memory queue; a message here is in memory the same way
// for at most writeBehindDelay, counted by Depth, written on a clean exit
// (Close). It is lost on a crash like the memory queue's messages are.
// That is why --mem-queue-size=0, which asks for every message on disk
// before the answer, has no write-behind (newDiskBackend), and why a
// message that came from a disk queue (m.ref != nil: its record is
// finished once this copy is written) is written through.
//
// A failed write keeps the messages (in order, ahead of newer ones),
// reports the error (the node turns unhealthy, so publishes are refused,
// health.go) and is retried every writeBehindRetry; until a write succeeds
// every message is written through, so a publisher gets the error itself.
//
// Goroutines: publishers append under mu; writes to the inner queue are
// serialised by flushMu (taken before mu), by whoever writes: the timer's
// goroutine, a publisher that filled the buffer or writes through, Close.
type writeBehindBackend struct {
	inner  BackendQueue
	report func(err error, held int) // outcome of every write of held messages
	delay  time.Duration             // writeBehindDelay (tests change it)

	flushMu sync.Mutex

	mu      sync.Mutex
	buf     []byte // batchHeaderLength bytes of room, then the messages as batch entries
	n       int    // messages in buf
	writing int    // messages taken from buf by the write under way
	spare   []byte // the other buffer, while buf is being written
	armed   bool   // timer will write buf
	now     bool   // ... at once: buf is full
	timer   *time.Timer
	failing error // the last write failed
	closed  bool
}

const (
	// writeBehindDelay is how long a spilled message may wait for
	// its write: at 40k PUB/s, ~40 messages share a write.
	writeBehindDelay = time.Millisecond
	// writeBehindRetry is how often a failed write is retried.
	writeBehindRetry = 100 * time.Millisecond
	// writeBehindMaxBytes is when a publisher writes the buffer itself
	// (bounding the memory held; a publisher faster than the disk waits
	// for it). A message larger than a quarter of it is written through.
	writeBehindMaxBytes = 256 << 10
)

func newWriteBehindBackend(inner BackendQueue, report func(err error, held int)) *writeBehindBackend {
	return &writeBehindBackend{inner: inner, report: report, delay: writeBehindDelay}
}

// putMessage queues m for the disk (the write-behind path).
func (w *writeBehindBackend) putMessage(m *Message, deliverAt int64) error {
	size := diskV1Size(m)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errBackendClosed
	}
	if w.failing != nil || size > writeBehindMaxBytes/4 {
		w.mu.Unlock()
		return w.Put(m.encodeDisk(deliverAt))
	}
	w.appendLocked(m, size, deliverAt)
	return w.scheduleAndUnlock()
}

// appendLocked adds m to the buffer (mu held).
func (w *writeBehindBackend) appendLocked(m *Message, size int, deliverAt int64) {
	if w.n == 0 {
		w.buf = append(w.buf[:0], make([]byte, batchHeaderLength)...)
	}
	w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(size))
	w.buf = appendDiskV1(w.buf, m, deliverAt)
	w.n++
}

// scheduleAndUnlock has the buffer written when it is due and releases mu:
// within w.delay; right away, by the timer's goroutine, once it holds
// writeBehindMaxBytes (the publisher goes on reading its next messages
// while they are written); by the publisher itself once the writes fall
// behind by twice that, so the memory held stays bounded. A failed write
// keeps the messages and is reported: what was appended is accepted.
func (w *writeBehindBackend) scheduleAndUnlock() error {
	switch {
	case len(w.buf) >= 2*writeBehindMaxBytes:
		w.mu.Unlock()
		w.flush()
		return nil
	case len(w.buf) >= writeBehindMaxBytes:
		if !w.now {
			w.now = true
			w.armLocked(0)
		}
	case !w.armed:
		w.armLocked(w.delay)
	}
	w.mu.Unlock()
	return nil
}

func (w *writeBehindBackend) armLocked(d time.Duration) {
	w.armed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(d, func() { w.flush() })
	} else {
		w.timer.Reset(d)
	}
}

func (w *writeBehindBackend) flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	return w.flushLocked()
}

// flushLocked writes what is buffered (flushMu held).
func (w *writeBehindBackend) flushLocked() error {
	w.mu.Lock()
	w.armed, w.now = false, false
	buf, n := w.buf, w.n
	if n == 0 {
		w.mu.Unlock()
		return nil
	}
	w.buf, w.n, w.spare = w.spare[:0], 0, nil
	w.writing = n
	w.mu.Unlock()

	done, err := w.write(buf, n)

	w.mu.Lock()
	w.writing = 0
	if err != nil {
		rest := dropEntries(buf, done)
		if w.n > 0 {
			rest = append(rest, w.buf[batchHeaderLength:]...)
		}
		w.buf, w.n = rest, n-done+w.n
		w.failing = err
		if !w.armed && !w.closed {
			w.armLocked(writeBehindRetry)
		}
	} else {
		w.failing = nil
		if cap(buf) <= 4*writeBehindMaxBytes {
			// reused: a publisher waits for the writes only once two
			// buffers' worth (plus what its own put adds) is buffered
			w.spare = buf[:0]
		}
	}
	held := w.n
	w.mu.Unlock()
	w.report(err, held)
	return err
}

// write hands n buffered messages to the inner queue; it returns how many
// were written.
func (w *writeBehindBackend) write(buf []byte, n int) (int, error) {
	switch q := w.inner.(type) {
	case *diskBackend:
		return q.putEntries(buf, n)
	case *lazyDiskBackend:
		return q.putEntries(buf, n)
	}
	return forEachEntry(buf, func(rec []byte) error { return w.inner.Put(append([]byte(nil), rec...)) })
}

// dropEntries removes the first k entries of buf, keeping the header room.
func dropEntries(buf []byte, k int) []byte {
	off := batchHeaderLength
	for ; k > 0; k-- {
		off += batchEntryHeader + int(binary.BigEndian.Uint32(buf[off:]))
	}
	return append(buf[:batchHeaderLength], buf[off:]...)
}

// Put writes a record through, after what is buffered.
func (w *writeBehindBackend) Put(rec []byte) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if err := w.flushLocked(); err != nil {
		return err
	}
	err := w.inner.Put(rec)
	w.mu.Lock()
	w.failing = err
	w.mu.Unlock()
	return err
}

// putMessages queues an MPUB's messages for the disk as putMessage does
// each: all of them, or (messages read from a disk queue, a batch too
// large to hold, a failing disk) none, and they are written through,
// after what is buffered.
func (w *writeBehindBackend) putMessages(msgs []*Message) (int, error) {
	size := 0
	for _, m := range msgs {
		if m.ref != nil {
			size = writeBehindMaxBytes
			break
		}
		size += batchEntryHeader + diskV1Size(m)
	}
	if size <= writeBehindMaxBytes/2 {
		w.mu.Lock()
		if w.failing == nil && !w.closed {
			for _, m := range msgs {
				w.appendLocked(m, diskV1Size(m), 0)
			}
			return len(msgs), w.scheduleAndUnlock()
		}
		w.mu.Unlock()
	}
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if err := w.flushLocked(); err != nil {
		return 0, err
	}
	return writeMessagesToBackend(msgs, w.inner)
}

func (w *writeBehindBackend) ReadChan() <-chan []byte { return w.inner.ReadChan() }

// Depth counts the buffered messages too. It waits for a write under way
// (flushMu): until go-diskqueue's Put returns, its count may or may not
// include the batch, and stats read right after a publish must be exact.
func (w *writeBehindBackend) Depth() int64 {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	d := w.inner.Depth()
	w.mu.Lock()
	n := w.n
	w.mu.Unlock()
	return d + int64(n)
}

func (w *writeBehindBackend) isEmpty() bool {
	w.mu.Lock()
	n := w.n + w.writing
	w.mu.Unlock()
	return n == 0 && backendIsEmpty(w.inner)
}

// Close writes what is buffered, then closes the queue.
func (w *writeBehindBackend) Close() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.stopLocked(false)
	w.flushLocked() // a failure is reported with the messages it leaves
	return w.inner.Close()
}

// Delete drops what is buffered and deletes the queue.
func (w *writeBehindBackend) Delete() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.stopLocked(true)
	return w.inner.Delete()
}

// stopLocked refuses further messages and stops the timer; drop discards
// the buffer (flushMu held).
func (w *writeBehindBackend) stopLocked(drop bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.armed = false
	if drop {
		w.buf, w.n = w.buf[:0], 0
	}
}

// Empty drops what is buffered and empties the queue.
func (w *writeBehindBackend) Empty() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	w.buf, w.n, w.failing = w.buf[:0], 0, nil
	w.mu.Unlock()
	return w.inner.Empty()
}
