package nsqd

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
	"github.com/ournsq/nsq/internal/quantile"
)

// Consumer is what a channel needs from a subscribed client.
type Consumer interface {
	UnPause()
	Pause()
	Close() error
	TimedOutMessage()
	Empty()
}

var (
	errNotInFlight    = errors.New("ID not in flight")
	errNotOwner       = errors.New("client does not own message")
	errAlreadyInFlt   = errors.New("ID already in flight")
	errAlreadyDefered = errors.New("ID already deferred")
)

// Channel is one independent queue of a topic, shared by its subscribers.
//
// Goroutines and state: subscribed clients' pumps read the memory queue and the
// backend's ReadChan directly (whoever is ready first takes the message).
// The in-flight set (map + heap by deadline) and the deferred set (map +
// heap by due time) each have their own mutex, taken only for map/heap
// updates. clients is guarded by the RWMutex. exitMutex orders puts against
// exit so nothing is written to a closed backend.
type Channel struct {
	requeueCount atomic.Uint64
	messageCount atomic.Uint64
	timeoutCount atomic.Uint64
	// deliveries from memory/hand-off queues by the consumer's locality
	// (D-TOPO-02); without the experiment everything counts as global
	zoneLocalMsgCount   atomic.Uint64
	regionLocalMsgCount atomic.Uint64
	globalMsgCount      atomic.Uint64
	// unbuffered hand-off queues of the topology-aware-consumption
	// experiment (D-TOPO-01); nil unless it is on and a zone/region is set
	zoneLocalMsgChan   chan *Message
	regionLocalMsgChan chan *Message
	topologyAware      bool

	sync.RWMutex // guards clients

	topicName string
	name      string
	nsqd      *NSQD

	backend   BackendQueue
	memq      *memQueue // nil with --mem-queue-size=0 (memqueue.go)
	exitFlag  atomic.Bool
	exitMutex sync.RWMutex

	clients   map[int64]Consumer
	paused    atomic.Bool
	ephemeral bool

	deleteCallback func(*Channel)
	deleter        sync.Once

	deferredMutex    sync.Mutex
	deferredMessages msgIndex
	deferredQ        deadlineQueue

	// consumers publishers may deliver to themselves (direct.go)
	direct directPeers

	inFlightMutex    sync.Mutex
	inFlightMessages msgIndex
	inFlight         deadlineQueue

	// nextDue is the earliest in-flight deadline or deferred due time
	// (unix ns, 0 = none). It may be early (stale) but never late, so the
	// queue scanner never wakes late (queue_scan.go). dueMu orders its
	// updates; lock order: dueMu before the heap mutexes.
	dueMu   sync.Mutex
	nextDue atomic.Int64

	// e2eLatency is nil unless percentiles are configured (D-E2E-01, e2e.go)
	e2eLatency *quantile.Quantile
}

func newChannel(topicName, channelName string, n *NSQD, deleteCallback func(*Channel)) *Channel {
	c := &Channel{
		topicName:      topicName,
		name:           channelName,
		nsqd:           n,
		clients:        make(map[int64]Consumer),
		ephemeral:      protocol.IsEphemeral(channelName),
		deleteCallback: deleteCallback,
		deferredQ:      newDeadlineQueue(),
		inFlight:       newDeadlineQueue(),
		e2eLatency:     newE2ELatency(n.getOpts()),
	}
	memSize := n.getOpts().MemQueueSize
	c.memq = newMemQueue(memSize, c.ephemeral)
	if opts := n.getOpts(); opts.hasExperiment(ExperimentTopologyAwareConsumption) {
		c.topologyAware = true
		if opts.TopologyZone != "" {
			c.zoneLocalMsgChan = make(chan *Message)
		}
		if opts.TopologyRegion != "" {
			c.regionLocalMsgChan = make(chan *Message)
		}
	}
	if c.ephemeral {
		c.backend = newDummyBackend()
	} else {
		c.backend = newDiskBackend(n, channelBackendName(topicName, channelName))
	}
	// the queue scanner must see a new channel at once, not at its next
	// refresh
	n.notifyChannelSetChanged()
	return c
}

// Name is the channel's name.
func (c *Channel) Name() string { return c.name }

// Exiting reports whether the channel is being closed or deleted.
func (c *Channel) Exiting() bool { return c.exitFlag.Load() }

// Delete drops everything and removes the channel's files (D-CHAN-02).
func (c *Channel) Delete() error { return c.exit(true) }

// Close flushes memory, in-flight and deferred messages to disk (D-SHUT-01).
func (c *Channel) Close() error { return c.exit(false) }

func (c *Channel) exit(deleted bool) error {
	c.exitMutex.Lock()
	defer c.exitMutex.Unlock()

	if !c.exitFlag.CompareAndSwap(false, true) {
		return errExiting
	}
	if deleted {
		c.nsqd.logf(lg.INFO, "CHANNEL(%s): deleting", c.name)
		// an explicit delete (not shutdown) unregisters from lookupd
		c.nsqd.channelDeleted(c)
	} else {
		c.nsqd.logf(lg.INFO, "CHANNEL(%s): closing", c.name)
	}

	// forcibly close subscribers (they see EOF, D-CHAN-02 / D-SHUT-04)
	c.RLock()
	for _, client := range c.clients {
		client.Close()
	}
	c.RUnlock()

	if deleted {
		c.Empty()
		return c.backend.Delete()
	}
	c.flush()
	return c.backend.Close()
}

// Empty drops queued, in-flight and deferred messages (D-CHAN-03).
func (c *Channel) Empty() error {
	c.RLock()
	for _, client := range c.clients {
		client.Empty()
	}
	c.RUnlock()

	c.inFlightMutex.Lock()
	inFlight := c.inFlightMessages
	c.inFlightMessages = msgIndex{}
	c.inFlight = newDeadlineQueue()
	c.inFlightMutex.Unlock()

	c.deferredMutex.Lock()
	deferred := c.deferredMessages
	c.deferredMessages = msgIndex{}
	c.deferredQ = newDeadlineQueue()
	c.deferredMutex.Unlock()

	// dropped on purpose: their disk records are finished
	inFlight.each((*Message).releaseRecord)
	deferred.each((*Message).releaseRecord)
	c.memq.drain(func(m *Message) { m.releaseRecord() })
	return c.backend.Empty()
}

// flush writes memory, in-flight and deferred messages to the backend;
// deferred ones keep their due time.
func (c *Channel) flush() {
	c.inFlightMutex.Lock()
	inFlight := c.inFlight.All()
	c.inFlightMessages = msgIndex{}
	c.inFlightMutex.Unlock()

	c.deferredMutex.Lock()
	deferred := c.deferredQ.All()
	c.deferredMessages = msgIndex{}
	c.deferredMutex.Unlock()

	if n := c.memq.Len(); n > 0 || len(inFlight) > 0 || len(deferred) > 0 {
		c.nsqd.logf(lg.INFO, "CHANNEL(%s): flushing %d memory %d in-flight %d deferred messages to backend",
			c.name, n, len(inFlight), len(deferred))
	}
	write := func(m *Message, deliverAt int64) {
		if err := writeMessageToBackend(m, deliverAt, c.backend); err != nil {
			c.nsqd.logf(lg.ERROR, "failed to write message to backend - %s", err)
		}
	}
	c.memq.drain(func(m *Message) { write(m, 0) })
	for _, m := range inFlight {
		write(m, 0)
	}
	for _, m := range deferred {
		write(m, m.pri)
	}
}

// Depth is memory + disk (D-QUEUE-01).
func (c *Channel) Depth() int64 { return int64(c.memq.Len()) + c.backend.Depth() }

// BackendDepth is the disk part of Depth.
func (c *Channel) BackendDepth() int64 { return c.backend.Depth() }

// InFlightCount is the number of messages sent and not yet finished.
func (c *Channel) InFlightCount() int {
	c.inFlightMutex.Lock()
	defer c.inFlightMutex.Unlock()
	return c.inFlightMessages.len()
}

// DeferredCount is the number of messages waiting for their due time.
func (c *Channel) DeferredCount() int {
	c.deferredMutex.Lock()
	defer c.deferredMutex.Unlock()
	return c.deferredMessages.len()
}

// MessageCount, RequeueCount and TimeoutCount are counters since start.
func (c *Channel) MessageCount() uint64 { return c.messageCount.Load() }

// RequeueCount counts REQs.
func (c *Channel) RequeueCount() uint64 { return c.requeueCount.Load() }

// TimeoutCount counts in-flight timeouts.
func (c *Channel) TimeoutCount() uint64 { return c.timeoutCount.Load() }

// ClientCount is the number of subscribed clients.
func (c *Channel) ClientCount() int {
	c.RLock()
	defer c.RUnlock()
	return len(c.clients)
}

// Pause stops delivery to clients; messages keep accumulating (D-PAUSE-02).
func (c *Channel) Pause() error { return c.setPaused(true) }

// UnPause resumes delivery.
func (c *Channel) UnPause() error { return c.setPaused(false) }

func (c *Channel) setPaused(p bool) error {
	c.paused.Store(p)
	c.RLock()
	for _, client := range c.clients {
		if p {
			client.Pause()
		} else {
			client.UnPause()
		}
	}
	c.RUnlock()
	c.nsqd.metadataChanged()
	return nil
}

// IsPaused reports the pause flag.
func (c *Channel) IsPaused() bool { return c.paused.Load() }

// PutMessage queues a message for delivery (memory first, then disk).
func (c *Channel) PutMessage(m *Message) error {
	_, err := c.putMessage(m)
	return err
}

// putMessage is PutMessage also telling whether m is held in memory
// afterwards (see put).
func (c *Channel) putMessage(m *Message) (held bool, err error) {
	c.exitMutex.RLock()
	defer c.exitMutex.RUnlock()
	if c.Exiting() {
		return false, errExiting
	}
	held, err = c.put(m)
	if err != nil {
		return held, err
	}
	c.messageCount.Add(1)
	return held, nil
}

// put hands m to a waiting consumer or the memory queue, else writes it to
// the disk queue. held reports whether the channel keeps m itself (a
// consumer or a queue refers to it); when it does not, m was copied to
// disk (or dropped, by an ephemeral channel) and nothing refers to it or
// its body any more, so a publisher may reuse both (PUB, protocol_v2.go).
func (c *Channel) put(m *Message) (held bool, err error) {
	if c.topologyAware {
		// a waiting same-zone consumer first, then same-region, then the
		// memory queue (D-TOPO-01); nil queues never take
		select {
		case c.zoneLocalMsgChan <- m:
			return true, nil
		default:
		}
		select {
		case c.zoneLocalMsgChan <- m:
			return true, nil
		case c.regionLocalMsgChan <- m:
			return true, nil
		default:
		}
	}
	if c.tryDirect(m) {
		return true, nil
	}
	if c.memq.tryPut(m) {
		return true, nil
	}
	err = writeMessageToBackend(m, 0, c.backend)
	c.nsqd.SetHealth(err)
	// on disk now, or dropped: either way the record it came from is
	// finished (backend_disk.go)
	m.releaseRecord()
	if err != nil {
		c.nsqd.logf(lg.ERROR, "CHANNEL(%s): failed to write message to backend - %s", c.name, err)
		return false, err
	}
	return false, nil
}

// topologyQueues returns the hand-off queues a client listens on and the
// counter its memory/hand-off deliveries bump (D-TOPO-01/02). A client
// whose zone equals nsqd's (also both empty) is zone-local.
func (c *Channel) topologyQueues(client *clientV2) (zone, region chan *Message, counter *atomic.Uint64) {
	if !c.topologyAware {
		return nil, nil, &c.globalMsgCount
	}
	opts := c.nsqd.getOpts()
	client.metaLock.RLock()
	zoneLocal := client.topologyZone == opts.TopologyZone
	regionLocal := client.topologyRegion == opts.TopologyRegion
	client.metaLock.RUnlock()
	switch {
	case zoneLocal:
		return c.zoneLocalMsgChan, c.regionLocalMsgChan, &c.zoneLocalMsgCount
	case regionLocal:
		return nil, c.regionLocalMsgChan, &c.regionLocalMsgCount
	}
	return nil, nil, &c.globalMsgCount
}

// PutMessageDeferred counts a DPUB copy and defers it (D-DEF-02).
func (c *Channel) PutMessageDeferred(m *Message, timeout time.Duration) {
	c.messageCount.Add(1)
	c.StartDeferredTimeout(m, timeout)
}

// AddClient subscribes a client (D-TCP-30, D-TCP-31).
func (c *Channel) AddClient(clientID int64, client Consumer) error {
	c.exitMutex.RLock()
	defer c.exitMutex.RUnlock()
	if c.Exiting() {
		return errExiting
	}

	c.Lock()
	defer c.Unlock()
	if _, ok := c.clients[clientID]; ok {
		return nil
	}
	max := c.nsqd.getOpts().MaxChannelConsumers
	if max != 0 && len(c.clients) >= max {
		return fmt.Errorf("consumers for %s:%s exceeds limit of %d", c.topicName, c.name, max)
	}
	c.clients[clientID] = client
	return nil
}

// RemoveClient unsubscribes a client; an ephemeral channel goes away with
// its last client (D-EPH-02).
func (c *Channel) RemoveClient(clientID int64) {
	c.exitMutex.RLock()
	defer c.exitMutex.RUnlock()
	if c.Exiting() {
		return
	}

	c.Lock()
	if _, ok := c.clients[clientID]; !ok {
		c.Unlock()
		return
	}
	delete(c.clients, clientID)
	remaining := len(c.clients)
	c.Unlock()

	if remaining == 0 && c.ephemeral {
		go c.deleter.Do(func() { c.deleteCallback(c) })
	}
}

// StartInFlightTimeout records m as sent to clientID, due back by timeout.
func (c *Channel) StartInFlightTimeout(m *Message, clientID int64, timeout time.Duration) error {
	return c.startInFlightAt(m, clientID, timeout, time.Now())
}

// startInFlightAt is StartInFlightTimeout for a message sent at now: a
// pump delivering a burst reads the clock once (the burst takes
// microseconds, deadlines are kept to the millisecond).
func (c *Channel) startInFlightAt(m *Message, clientID int64, timeout time.Duration, now time.Time) error {
	one := [1]*Message{m}
	if _, dups := c.startInFlightBatch(one[:], clientID, timeout, now); dups != nil {
		return errAlreadyInFlt
	}
	return nil
}

// StartDeferredTimeout keeps m until timeout has passed (D-DEF-01).
func (c *Channel) StartDeferredTimeout(m *Message, timeout time.Duration) error {
	now := time.Now().UnixNano()
	return c.deferUntil(m, now+int64(timeout), now)
}

// deferCopyAfter is how long a deferred message may keep the larger
// buffers it was carved from alive; one due later is copied out of them.
const deferCopyAfter = time.Second

func (c *Channel) deferUntil(m *Message, dueAt, now int64) error {
	long := dueAt-now > int64(deferCopyAfter)
	if long && (m.ref != nil || m.sharedBody) {
		// a body read from disk is a slice of the whole record, which
		// may be a batch of up to --max-body-size, and an MPUB's bodies
		// share blocks (readMPUB): a message waiting (maybe hours) for
		// its due time keeps only its own bytes
		m.Body = bytes.Clone(m.Body)
		m.sharedBody = false
	}
	if long && m.inBatch {
		// nobody else holds m now (it was popped from in flight, or is
		// a fresh copy): track a copy outside the MPUB's Message block
		mc := *m
		mc.inBatch = false
		m = &mc
	}
	m.pri = dueAt
	c.deferredMutex.Lock()
	if !c.deferredMessages.addNew(m) {
		c.deferredMutex.Unlock()
		return errAlreadyDefered
	}
	c.deferredQ.Push(m)
	c.deferredMutex.Unlock()
	c.noteDue(dueAt)
	return nil
}

// popInFlight removes id from the in-flight set if clientID owns it.
func (c *Channel) popInFlight(clientID int64, id MessageID) (*Message, error) {
	c.inFlightMutex.Lock()
	defer c.inFlightMutex.Unlock()
	return c.popInFlightLocked(clientID, id)
}

// popInFlightLocked is popInFlight with inFlightMutex held.
func (c *Channel) popInFlightLocked(clientID int64, id MessageID) (*Message, error) {
	i := c.inFlightMessages.find(id)
	if i < 0 {
		return nil, errNotInFlight
	}
	m := c.inFlightMessages.at(i)
	if m.clientID != clientID {
		return nil, errNotOwner
	}
	c.inFlightMessages.removeAt(i)
	c.inFlight.Remove(m)
	return m, nil
}

// FinishMessage acknowledges a message (D-TCP-35).
func (c *Channel) FinishMessage(clientID int64, id MessageID) error {
	m, err := c.popInFlight(clientID, id)
	if err != nil {
		return err
	}
	c.recordE2E(m)
	m.releaseRecord()
	return nil
}

// RequeueMessage puts an in-flight message back now (timeout 0) or after
// timeout (D-REQ-01).
func (c *Channel) RequeueMessage(clientID int64, id MessageID, timeout time.Duration) error {
	m, err := c.popInFlight(clientID, id)
	if err != nil {
		return err
	}
	c.requeueCount.Add(1)

	if timeout == 0 {
		c.exitMutex.RLock()
		defer c.exitMutex.RUnlock()
		if c.Exiting() {
			return errExiting
		}
		_, err := c.put(m)
		return err
	}
	return c.StartDeferredTimeout(m, timeout)
}

// TouchMessage extends a message's deadline, never beyond delivery +
// --max-msg-timeout (D-TCP-37, D-INFL-03).
func (c *Channel) TouchMessage(clientID int64, id MessageID, clientMsgTimeout time.Duration) error {
	c.inFlightMutex.Lock()
	defer c.inFlightMutex.Unlock()
	m := c.inFlightMessages.get(id)
	if m == nil {
		return errNotInFlight
	}
	if m.clientID != clientID {
		return errNotOwner
	}
	newDeadline := time.Now().UnixNano() + int64(clientMsgTimeout)
	limit := m.deliveredAt + int64(c.nsqd.getOpts().MaxMsgTimeout)
	c.inFlight.Remove(m)
	m.pri = min(newDeadline, limit)
	c.inFlight.Push(m)
	return nil
}

// processInFlightQueue requeues messages whose deadline passed (D-INFL-02).
// It reports whether it found any work, and how long until the next deadline.
func (c *Channel) processInFlightQueue(now int64) (dirty bool, next int64) {
	c.exitMutex.RLock()
	defer c.exitMutex.RUnlock()
	if c.Exiting() {
		return false, 0
	}
	for {
		c.inFlightMutex.Lock()
		m, wait := c.inFlight.PeekAndShift(now)
		if m != nil {
			c.inFlightMessages.remove(m.ID)
		}
		c.inFlightMutex.Unlock()
		if m == nil {
			return dirty, wait
		}
		dirty = true
		c.timeoutCount.Add(1)
		c.RLock()
		client, ok := c.clients[m.clientID]
		c.RUnlock()
		if ok {
			client.TimedOutMessage()
		}
		c.put(m)
	}
}

// processDeferredQueue moves due deferred messages into the queue.
func (c *Channel) processDeferredQueue(now int64) (dirty bool, next int64) {
	c.exitMutex.RLock()
	defer c.exitMutex.RUnlock()
	if c.Exiting() {
		return false, 0
	}
	for {
		c.deferredMutex.Lock()
		m, wait := c.deferredQ.PeekAndShift(now)
		if m != nil {
			c.deferredMessages.remove(m.ID)
		}
		c.deferredMutex.Unlock()
		if m == nil {
			return dirty, wait
		}
		dirty = true
		c.put(m)
	}
}

// fromBackend decodes a record read from the channel's disk queue. A record
// whose deliver-at is still in the future goes to the deferred set and nil
// is returned. The Message comes from the calling pump's slab.
func (c *Channel) fromBackend(b []byte, slab *messageSlab) *Message {
	ref := claimRecord(c.backend, b, true) // the pump refills (diskBackend.refill)
	m := slab.next()
	err := decodeDiskMessageInto(m, b)
	m.inBatch = true
	if err != nil {
		ref.release()
		c.nsqd.logf(lg.ERROR, "CHANNEL(%s): failed to decode message - %s", c.name, err)
		return nil
	}
	m.ref = ref // until the message is finished (backend_disk.go)
	if m.deliverAt > 0 {
		due := m.deliverAt
		m.deliverAt = 0
		if now := time.Now().UnixNano(); due > now {
			if err := c.deferUntil(m, due, now); err == nil {
				return nil
			}
		}
	}
	return m
}
