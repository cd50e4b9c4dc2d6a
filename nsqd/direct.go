package nsqd

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Direct delivery.
//
// A message published while a consumer of its channel sits idle used to go
// publisher's goroutine → the channel's memory queue → the consumer's pump
// goroutine → socket, and the publisher's OK went out before the pump ran.
// On a VM that hop is most of a message's time in nsqd: the send readies
// the pump and wakes a second thread to look for it. When nothing is
// queued ahead of it, the publisher's goroutine now puts the message in
// flight for an idle consumer and writes its frame itself, in one
// non-blocking write(2), before answering. The consumer receives exactly
// the frame its pump would have written.
//
// Who takes part: consumers whose pump writes every frame at once anyway
// (output_buffer_size -1), on a plain TCP connection (no TLS, snappy or
// deflate), without a sample rate, on a channel without topology-aware
// hand-off queues, for frames that fit their (empty) output buffer.
//
// Invariants:
//   - RDY is never exceeded. The pump delivers holding c.deliverTok; a
//     publisher only TryLocks it (and never waits), and delivers only while
//     RDY leaves room for two more messages: a pump already selecting on the
//     queue (it saw room) still has room for what it takes.
//   - A message never overtakes an older one: the channel's memory queue
//     must hold nothing and nothing taken from it may still be on its way to
//     a client (memQueue.settled), and the disk queue must be empty.
//   - The publisher never blocks on a consumer: what the socket does not
//     take goes to the consumer's output buffer, and its pump is kicked to
//     flush it (blocking, under the write timeout, as any slow consumer).

// directPeer is a consumer that may be delivered to directly.
type directPeer struct {
	c          *clientV2
	raw        syscall.RawConn
	msgTimeout time.Duration
	frame      []byte // scratch, guarded by c.writeLock
}

// directPeers is a channel's directPeers, copy-on-write: publishers read it
// without a lock.
type directPeers struct {
	list atomic.Pointer[[]*directPeer]
	mu   sync.Mutex // serialises add/remove
	next atomic.Uint32
	// for tests: deliveries made, and those whose frame the socket did
	// not take whole (finished by the pump)
	delivered, leftOver atomic.Uint64
}

func (s *directPeers) add(p *directPeer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []*directPeer
	if l := s.list.Load(); l != nil {
		cur = *l
	}
	l := append(append(make([]*directPeer, 0, len(cur)+1), cur...), p)
	s.list.Store(&l)
}

func (s *directPeers) remove(c *clientV2) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.list.Load()
	if cur == nil {
		return
	}
	var l []*directPeer
	for _, p := range *cur {
		if p.c != c {
			l = append(l, p)
		}
	}
	if len(l) == 0 {
		s.list.Store(nil)
		return
	}
	s.list.Store(&l)
}

// joinDirect lets publishers deliver to c directly if it qualifies (see
// above); the pump calls it at start, and leaveDirect when it ends.
func (ch *Channel) joinDirect(c *clientV2, settings identifyEvent) bool {
	if ch.nsqd.getOpts().noDirectDelivery || settings.SampleRate > 0 || ch.topologyAware {
		return false
	}
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		return false
	}
	raw, err := tc.SyscallConn()
	if err != nil || !canWriteNonBlocking {
		return false
	}
	c.writeLock.Lock()
	plain := c.unbuffered && c.writeDst == nil && c.tlsConnState.Load() == nil
	c.writeLock.Unlock()
	if !plain {
		return false
	}
	c.flushKick = make(chan struct{}, 1)
	ch.direct.add(&directPeer{c: c, raw: raw, msgTimeout: settings.MsgTimeout})
	return true
}

// leaveDirect ends direct delivery to c: once it returns, no publisher is
// delivering to c or will.
func (ch *Channel) leaveDirect(c *clientV2) {
	ch.direct.remove(c)
	c.deliverTok.Lock() // kept: a publisher holding an older list fails TryLock
}

// tryDirect delivers m to an idle consumer from the caller's goroutine;
// false means m still has to be queued.
func (ch *Channel) tryDirect(m *Message) bool {
	l := ch.direct.list.Load()
	if l == nil || !ch.memq.settled() || !backendIsEmpty(ch.backend) || ch.IsPaused() {
		return false
	}
	peers := *l
	start := int(ch.direct.next.Add(1))
	for i := range peers {
		p := peers[(start+i)%len(peers)]
		if !p.c.deliverTok.TryLock() {
			continue // its pump (or another publisher) is delivering
		}
		ok := p.c.readyCount.Load()-p.c.inFlightCount.Load() >= 2 && p.deliver(ch, m)
		p.c.deliverTok.Unlock()
		if ok {
			ch.direct.delivered.Add(1)
			ch.globalMsgCount.Add(1)
			return true
		}
	}
	return false
}

// deliver puts m in flight for p's client and writes its frame (deliverTok
// held). False leaves m as it was.
func (p *directPeer) deliver(ch *Channel, m *Message) bool {
	c := p.c
	if !c.writeLock.TryLock() {
		return false // e.g. its pump blocked flushing to a consumer not reading
	}
	defer c.writeLock.Unlock()
	size := 8 + wireHeaderLength + len(m.Body)
	if c.writer.Buffered() > 0 || size > c.writer.Available() {
		return false // frames already waiting go first; a big one goes by the pump
	}
	m.Attempts++
	one := [1]*Message{m}
	if started, _ := ch.startInFlightBatch(one[:], c.ID, p.msgTimeout, time.Now()); len(started) == 0 {
		m.Attempts-- // its ID is in flight already: the pump's path deals with that
		return false
	}
	c.inFlightCount.Add(1)
	c.messageCount.Add(1)

	frame := append(p.frame[:0], make([]byte, 8+wireHeaderLength)...)
	putFrameHeader(frame, m)
	frame = append(frame, m.Body...)
	p.frame = frame[:0]
	n, err := writeNonBlocking(p.raw, frame)
	switch {
	case err == nil && n == len(frame):
	case err == nil || err == syscall.EAGAIN || err == syscall.EINTR:
		// the socket is full: the rest waits in the output buffer (it
		// fits, checked above) and the pump flushes it
		c.writer.Write(frame[max(n, 0):])
		ch.direct.leftOver.Add(1)
		select {
		case c.flushKick <- struct{}{}:
		default:
		}
	default:
		// the connection is gone: the message was never sent
		ch.inFlightMutex.Lock()
		_, perr := ch.popInFlightLocked(c.ID, m.ID)
		ch.inFlightMutex.Unlock()
		if perr != nil {
			return true // already out of flight (timed out): requeued there
		}
		m.Attempts--
		c.inFlightCount.Add(-1)
		c.messageCount.Add(^uint64(0))
		return false
	}
	return true
}
