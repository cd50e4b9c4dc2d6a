package nsqd

// msgPQ is a binary min-heap of messages ordered by pri (a unix-ns deadline).
// Each channel keeps two: in-flight (by timeout) and deferred (by due time).
// A message is in at most one heap at a time, so it can carry its own index,
// which makes removal by ID O(log n). Not safe for concurrent use: the owning
// channel guards each heap with its own mutex.
type msgPQ []*Message

func newMsgPQ(capacity int) msgPQ { return make(msgPQ, 0, capacity) }

func (pq *msgPQ) Len() int { return len(*pq) }

func (pq *msgPQ) Push(m *Message) {
	n := len(*pq)
	*pq = append(*pq, m)
	m.index = n
	pq.up(n)
}

// Remove takes the message at index i out of the heap.
func (pq *msgPQ) Remove(i int) *Message {
	n := len(*pq) - 1
	if n != i {
		pq.swap(i, n)
		if !pq.down(i, n) {
			pq.up(i)
		}
	}
	m := (*pq)[n]
	(*pq)[n] = nil
	m.index = -1
	*pq = (*pq)[:n]
	// give memory back after a burst
	if c := cap(*pq); c > 64 && n < c/4 {
		shrunk := make(msgPQ, n, c/2)
		copy(shrunk, *pq)
		*pq = shrunk
	}
	return m
}

// PeekAndShift removes and returns the root if its pri is <= max; otherwise
// it returns nil and how long (in ns) until the root is due.
func (pq *msgPQ) PeekAndShift(max int64) (*Message, int64) {
	if len(*pq) == 0 {
		return nil, 0
	}
	m := (*pq)[0]
	if m.pri > max {
		return nil, m.pri - max
	}
	pq.Remove(0)
	return m, 0
}

func (pq msgPQ) swap(i, j int) {
	pq[i], pq[j] = pq[j], pq[i]
	pq[i].index = i
	pq[j].index = j
}

func (pq msgPQ) up(j int) {
	for {
		i := (j - 1) / 2 // parent
		if i == j || pq[j].pri >= pq[i].pri {
			break
		}
		pq.swap(i, j)
		j = i
	}
}

func (pq msgPQ) down(i0, n int) bool {
	i := i0
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && pq[j2].pri < pq[j1].pri {
			j = j2
		}
		if pq[j].pri >= pq[i].pri {
			break
		}
		pq.swap(i, j)
		i = j
	}
	return i > i0
}
