package nsqd

import (
	"sync"
	"testing"
)

func TestMemQueueGrowsUpToLimitInOrder(t *testing.T) {
	q := newMemQueue(1000, false)
	if c := cap(q.ch()); c != memQueueInitialCap {
		t.Fatalf("initial cap %d", c)
	}
	for i := 0; i < 1000; i++ {
		if !q.tryPut(&Message{Attempts: uint16(i)}) {
			t.Fatalf("put %d refused below the limit", i)
		}
	}
	if q.tryPut(&Message{}) {
		t.Fatal("put accepted over the limit")
	}
	if q.Len() != 1000 || cap(q.ch()) != 1000 {
		t.Fatalf("len %d cap %d", q.Len(), cap(q.ch()))
	}
	i := 0
	q.drain(func(m *Message) {
		if int(m.Attempts) != i {
			t.Fatalf("order broken: got %d at %d", m.Attempts, i)
		}
		i++
	})
	if i != 1000 || q.Len() != 0 {
		t.Fatalf("drained %d, left %d", i, q.Len())
	}
}

func TestMemQueueNilAndUnbuffered(t *testing.T) {
	var q *memQueue = newMemQueue(0, false)
	if q != nil || q.tryPut(&Message{}) || q.Len() != 0 || q.ch() != nil {
		t.Fatal("limit 0 must be a nil queue that takes nothing")
	}
	u := newMemQueue(0, true)
	if u.tryPut(&Message{}) {
		t.Fatal("unbuffered queue took a message with no receiver")
	}
	got := make(chan *Message)
	go func() {
		for {
			m, ok := <-u.ch()
			if ok {
				got <- m
				return
			}
		}
	}()
	m := &Message{Attempts: 7}
	for !u.tryPut(m) {
	}
	if (<-got).Attempts != 7 {
		t.Fatal("hand-off lost the message")
	}
}

// Receivers that follow the protocol (re-read ch() after a close) get every
// message exactly once while the queue grows under them.
func TestMemQueueConcurrentGrowth(t *testing.T) {
	q := newMemQueue(10000, false)
	const total = 20000
	var wg sync.WaitGroup
	seen := make([]int32, total)
	var mu sync.Mutex
	count := 0
	done := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m, ok := <-q.ch():
					if !ok {
						continue
					}
					mu.Lock()
					seen[m.clientID]++
					count++
					if count == total {
						close(done)
					}
					mu.Unlock()
				case <-done:
					return
				}
			}
		}()
	}
	for i := 0; i < total; i++ {
		for !q.tryPut(&Message{clientID: int64(i)}) {
		}
	}
	<-done
	wg.Wait()
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("message %d seen %d times", i, n)
		}
	}
}

// tryPutMany queues a prefix: it grows the buffer across several
// doublings in one call, stops at the limit and keeps the order.
func TestMemQueueTryPutManyStopsAtLimit(t *testing.T) {
	q := newMemQueue(300, false)
	batch := func(from, n int) []*Message {
		msgs := make([]*Message, n)
		for i := range msgs {
			msgs[i] = &Message{Attempts: uint16(from + i)}
		}
		return msgs
	}
	if n := q.tryPutMany(batch(0, 200)); n != 200 {
		t.Fatalf("first batch: %d of 200 queued", n)
	}
	if n := q.tryPutMany(batch(200, 150)); n != 100 {
		t.Fatalf("second batch: %d queued, want the 100 that fit", n)
	}
	if n := q.tryPutMany(batch(300, 1)); n != 0 {
		t.Fatalf("full queue took %d", n)
	}
	i := 0
	q.drain(func(m *Message) {
		if int(m.Attempts) != i {
			t.Fatalf("order broken: got %d at %d", m.Attempts, i)
		}
		i++
	})
	if i != 300 {
		t.Fatalf("drained %d, want 300", i)
	}
	var nilQ *memQueue
	if nilQ.tryPutMany(batch(0, 3)) != 0 {
		t.Fatal("a nil queue (mem-queue-size 0) takes nothing")
	}
	if u := newMemQueue(0, true); u.tryPutMany(batch(0, 3)) != 0 {
		t.Fatal("an unbuffered queue takes nothing without a waiting receiver")
	}
}

// settled (direct delivery's guard against overtaking) holds only when no
// message is queued, being put, or taken and not yet handled.
func TestMemQueueSettled(t *testing.T) {
	q := newMemQueue(2, false)
	if !q.settled() {
		t.Fatal("an empty queue is not settled")
	}
	q.tryPut(&Message{})
	q.tryPut(&Message{})
	if q.tryPut(&Message{}) || q.settled() {
		t.Fatal("full queue: a put was accepted, or the queue is settled")
	}
	<-q.ch()
	<-q.ch()
	if q.settled() {
		t.Fatal("settled while two taken messages are not handled yet")
	}
	q.done(1)
	if q.settled() {
		t.Fatal("settled while a taken message is not handled yet")
	}
	q.done(1)
	if !q.settled() {
		t.Fatal("not settled once everything taken is handled")
	}
	if n := q.tryPutMany([]*Message{{}, {}, {}}); n != 2 || q.settled() {
		t.Fatalf("tryPutMany queued %d (want 2), settled %v", n, q.settled())
	}
	q.drain(nil)
	if !q.settled() {
		t.Fatal("not settled after drain")
	}
	var nilQ *memQueue
	if !nilQ.settled() {
		t.Fatal("no queue (--mem-queue-size=0) is always settled")
	}
}
