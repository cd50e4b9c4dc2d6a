package nsqd

import "math"

// deadlineQueue orders a channel's in-flight messages by deadline (pri).
//
// A pump sends messages with deadline = now + the client's msg timeout, so
// the deadlines of one channel almost always arrive in order: those go to
// a FIFO, where a push is an append and a removal (FIN, REQ) leaves a hole,
// both O(1) instead of a heap's O(log n) sift with its cache misses. A
// message whose deadline is earlier than the FIFO's last (a client with a
// shorter msg_timeout, a TOUCH capped by --max-msg-timeout) goes to a heap;
// the earliest message is the earlier of the two fronts.
//
// A message in the FIFO has index = fifoIndex(its absolute position); one
// in the heap its heap position (>= 0). Holes at the front are skipped as
// they appear; holes elsewhere are squeezed out once they outnumber the
// messages, so a message held until its timeout while millions pass by
// does not pin a long run of holes. Not safe for concurrent use (the
// channel's inFlightMutex guards it).
type deadlineQueue struct {
	fifo    []*Message // pri non-decreasing; nil = a hole
	first   int        // fifo[:first] are holes
	base    int        // absolute position of fifo[0]
	holes   int        // holes in fifo[first:]
	lastPri int64      // pri of the last message appended (holes included)
	heap    msgPQ
}

// fifoIndex encodes absolute FIFO position p as a Message.index: -2, -3, …
// (-1 means "in no queue", >= 0 is a heap position).
func fifoIndex(p int) int   { return -2 - p }
func fifoPos(index int) int { return -2 - index }

func newDeadlineQueue() deadlineQueue { return deadlineQueue{lastPri: math.MinInt64} }

// Len is the number of messages queued.
func (q *deadlineQueue) Len() int { return len(q.fifo) - q.first - q.holes + len(q.heap) }

// Push adds m, ordered by m.pri.
func (q *deadlineQueue) Push(m *Message) {
	if m.pri < q.lastPri {
		q.heap.Push(m)
		return
	}
	q.lastPri = m.pri
	m.index = fifoIndex(q.base + len(q.fifo))
	q.fifo = append(q.fifo, m)
}

// Remove takes m out if it is queued here; it reports whether it was.
func (q *deadlineQueue) Remove(m *Message) bool {
	if m.index >= 0 {
		if m.index < len(q.heap) && q.heap[m.index] == m {
			q.heap.Remove(m.index)
			return true
		}
		return false
	}
	i := fifoPos(m.index) - q.base
	if i < q.first || i >= len(q.fifo) || q.fifo[i] != m {
		return false
	}
	q.fifo[i] = nil
	m.index = -1
	q.holes++
	q.trim()
	return true
}

// Peek returns the message with the earliest deadline, or nil.
func (q *deadlineQueue) Peek() *Message {
	var m *Message
	if q.first < len(q.fifo) {
		m = q.fifo[q.first]
	}
	if len(q.heap) > 0 && (m == nil || q.heap[0].pri < m.pri) {
		m = q.heap[0]
	}
	return m
}

// PeekAndShift removes and returns the earliest message if its pri is <=
// max; otherwise it returns nil and how long (ns) until the earliest is
// due (0 if empty).
func (q *deadlineQueue) PeekAndShift(max int64) (*Message, int64) {
	m := q.Peek()
	if m == nil {
		return nil, 0
	}
	if m.pri > max {
		return nil, m.pri - max
	}
	q.Remove(m)
	return m, 0
}

// All returns every queued message (in no particular order) and empties q.
func (q *deadlineQueue) All() []*Message {
	all := make([]*Message, 0, q.Len())
	for _, m := range q.fifo[q.first:] {
		if m != nil {
			m.index = -1
			all = append(all, m)
		}
	}
	for _, m := range q.heap {
		m.index = -1
		all = append(all, m)
	}
	*q = newDeadlineQueue()
	return all
}

// trim skips the holes at the front and squeezes the others out when they
// outnumber the messages (amortised O(1) per removal).
func (q *deadlineQueue) trim() {
	for q.first < len(q.fifo) && q.fifo[q.first] == nil {
		q.first++
		q.holes--
	}
	live := len(q.fifo) - q.first - q.holes
	switch {
	case live == 0:
		// empty: start over (the next deadline need not follow lastPri)
		q.base += len(q.fifo)
		clear(q.fifo)
		q.fifo = q.fifo[:0]
		q.first, q.holes = 0, 0
		q.lastPri = math.MinInt64
		q.shrink()
	case q.holes > 64 && q.holes > 2*live:
		// squeeze every hole out; the live messages get new positions
		q.base += len(q.fifo)
		n := 0
		for _, m := range q.fifo[q.first:] {
			if m != nil {
				m.index = fifoIndex(q.base + n)
				q.fifo[n] = m
				n++
			}
		}
		clear(q.fifo[n:])
		q.fifo = q.fifo[:n]
		q.first, q.holes = 0, 0
		q.shrink()
	case q.first > 64 && q.first > len(q.fifo)/2:
		// move the live part to the front: positions are absolute, so
		// only base changes
		n := copy(q.fifo, q.fifo[q.first:])
		clear(q.fifo[n:])
		q.fifo = q.fifo[:n]
		q.base += q.first
		q.first = 0
	}
}

// shrink gives memory back after a burst.
func (q *deadlineQueue) shrink() {
	if c := cap(q.fifo); c > 1024 && len(q.fifo) < c/4 {
		q.fifo = append(make([]*Message, 0, c/2), q.fifo...)
	}
}
