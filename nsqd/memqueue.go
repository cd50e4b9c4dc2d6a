package nsqd

import (
	"sync"
	"sync/atomic"
)

// memQueueInitialCap is the buffer a memory queue starts with; it doubles
// on demand up to --mem-queue-size.
const memQueueInitialCap = 64

// memQueue is a topic's or channel's in-memory queue: a buffered Go channel
// of at most `limit` messages, as in NSQ, except that the buffer starts
// small and grows when it fills. NSQ allocates the whole --mem-queue-size
// buffer (80 KB at the default) for every topic and channel up front, which
// is most of the memory of a node with many idle channels.
//
// Receivers select on ch() and must treat a closed channel (ok == false) as
// "the queue moved to a bigger buffer": they loop and call ch() again.
// Senders hold mu for reading while they send, so grow (write lock) can
// drain the old buffer into the new one in order and close it safely.
type memQueue struct {
	mu    sync.RWMutex
	cur   atomic.Pointer[chan *Message]
	limit int
	// pending counts messages being put, queued, or taken by a receiver
	// that has not handled them yet (done): zero means no message is on
	// its way through the queue (settled; direct.go)
	pending atomic.Int64
}

// newMemQueue returns nil for limit 0 (no memory buffering at all), and an
// unbuffered hand-off queue when unbuffered is set (ephemeral queues with
// --mem-queue-size=0, D-EPH-03).
func newMemQueue(limit int64, unbuffered bool) *memQueue {
	if limit <= 0 && !unbuffered {
		return nil
	}
	q := &memQueue{limit: int(limit)}
	ch := make(chan *Message, min(int(limit), memQueueInitialCap))
	q.cur.Store(&ch)
	return q
}

// ch is the channel to receive from now; nil for a nil queue (a select
// case on it never fires).
func (q *memQueue) ch() chan *Message {
	if q == nil {
		return nil
	}
	return *q.cur.Load()
}

// Len is the number of queued messages.
func (q *memQueue) Len() int {
	if q == nil {
		return 0
	}
	return len(q.ch())
}

// tryPut queues m if there is room (growing the buffer if needed) or a
// receiver is waiting on an unbuffered queue; false means full.
func (q *memQueue) tryPut(m *Message) bool {
	if q == nil {
		return false
	}
	// counted before the send: a receiver may take m before we return
	q.pending.Add(1)
	for {
		q.mu.RLock()
		ch := q.ch()
		select {
		case ch <- m:
			q.mu.RUnlock()
			return true
		default:
		}
		full := cap(ch) >= q.limit
		q.mu.RUnlock()
		if full {
			q.pending.Add(-1)
			return false
		}
		q.grow(ch)
	}
}

// done tells the queue that a receiver has handled n messages it took.
func (q *memQueue) done(n int) {
	if q != nil {
		q.pending.Add(-int64(n))
	}
}

// settled reports whether no message is queued, being put, or taken and
// not yet handled.
func (q *memQueue) settled() bool { return q == nil || q.pending.Load() == 0 }

// tryPutMany is tryPut for several messages under one read lock (an MPUB
// takes it once, not once per message); it returns how many, from the
// first, were queued.
func (q *memQueue) tryPutMany(msgs []*Message) int {
	if q == nil {
		return 0
	}
	n := 0
	q.pending.Add(int64(len(msgs)))
	defer func() { q.pending.Add(-int64(len(msgs) - n)) }()
	for n < len(msgs) {
		q.mu.RLock()
		ch := q.ch()
	send:
		for n < len(msgs) {
			select {
			case ch <- msgs[n]:
				n++
			default:
				break send
			}
		}
		full := cap(ch) >= q.limit
		q.mu.RUnlock()
		if n == len(msgs) || full {
			return n
		}
		q.grow(ch)
	}
	return n
}

// grow replaces old with a buffer twice as large (capped at limit), moving
// the queued messages over in order. Receivers blocked on old wake up on
// its close and move to the new buffer.
func (q *memQueue) grow(old chan *Message) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch() != old {
		return // somebody else grew it
	}
	bigger := make(chan *Message, min(max(2*cap(old), memQueueInitialCap), q.limit))
	for moved := false; !moved; {
		select {
		case m := <-old:
			bigger <- m
		default:
			moved = true
		}
	}
	q.cur.Store(&bigger)
	close(old)
}

// drain removes every queued message, in order, handing each to fn (nil
// fn discards).
func (q *memQueue) drain(fn func(*Message)) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	ch := q.ch()
	for {
		select {
		case m := <-ch:
			if fn != nil {
				fn(m)
			}
			q.pending.Add(-1)
		default:
			return
		}
	}
}
