package nsqd

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
)

var errExiting = errors.New("exiting")

// Topic receives published messages and copies each one to every channel.
//
// Goroutines and state: the topic's messagePump is the only reader of
// the memory queue and of the backend's ReadChan; publishers write to them
// under the RLock (so Delete/Close can wait them out with the write lock).
// channelMap and chanList are guarded by the RWMutex; counters are atomics.
//
// Direct delivery: while the topic is started, not paused, has channels
// and nothing is queued in it, a publisher copies the message to the
// channels itself (deliverDirect) instead of queueing it for the pump.
// That saves a queue round trip and a goroutine hand-off per message (and
// with --mem-queue-size=0 a whole disk write and read). The pump still
// drains whatever queued up (no channels yet, paused, DPUB); a message it
// holds can be overtaken by a direct one, and NSQ does not promise order.
type Topic struct {
	messageCount atomic.Uint64
	messageBytes atomic.Uint64

	sync.RWMutex // guards channelMap and publishing vs. exit

	name       string
	channelMap map[string]*Channel
	chanList   []*Channel // channelMap's values, for the publish path
	backend    BackendQueue
	// memq is nil when --mem-queue-size=0 (everything via disk), an
	// unbuffered hand-off for ephemeral topics with size 0 (memqueue.go)
	memq              *memQueue
	startChan         chan struct{}
	exitChan          chan struct{}
	channelUpdateChan chan struct{}
	pauseChan         chan struct{}
	pumpDone          chan struct{}
	startOnce         sync.Once

	exitFlag  atomic.Bool
	paused    atomic.Bool
	started   atomic.Bool
	ephemeral bool

	deleteCallback func(*Topic)
	deleter        sync.Once

	idFactory *guidFactory
	nsqd      *NSQD
}

// newTopic builds a topic; its pump waits for Start so that channels loaded
// from metadata exist before the first message is routed.
func newTopic(name string, n *NSQD, deleteCallback func(*Topic)) *Topic {
	t := &Topic{
		name:              name,
		channelMap:        make(map[string]*Channel),
		startChan:         make(chan struct{}),
		exitChan:          make(chan struct{}),
		channelUpdateChan: make(chan struct{}, 1),
		pauseChan:         make(chan struct{}, 1),
		pumpDone:          make(chan struct{}),
		ephemeral:         protocol.IsEphemeral(name),
		deleteCallback:    deleteCallback,
		idFactory:         newGUIDFactory(n.getOpts().ID),
		nsqd:              n,
	}
	memSize := n.getOpts().MemQueueSize
	t.memq = newMemQueue(memSize, t.ephemeral)
	if t.ephemeral {
		t.backend = newDummyBackend()
	} else {
		t.backend = newDiskBackend(n, name)
	}
	go t.messagePump()
	n.notifyChannelSetChanged()
	return t
}

// Start lets the pump begin routing messages.
func (t *Topic) Start() {
	t.startOnce.Do(func() {
		t.started.Store(true)
		close(t.startChan)
	})
}

// Name is the topic's name.
func (t *Topic) Name() string { return t.name }

// Exiting reports whether the topic is being closed or deleted.
func (t *Topic) Exiting() bool { return t.exitFlag.Load() }

// GetChannel returns the named channel, creating it if needed (D-CHAN-01).
func (t *Topic) GetChannel(channelName string) *Channel {
	t.Lock()
	channel, isNew := t.getOrCreateChannel(channelName)
	t.Unlock()
	if isNew {
		t.signalChannelUpdate()
		t.nsqd.channelCreated(channel)
	}
	return channel
}

// getOrCreateChannel must be called with the write lock held.
func (t *Topic) getOrCreateChannel(channelName string) (*Channel, bool) {
	if c, ok := t.channelMap[channelName]; ok {
		return c, false
	}
	deleteCallback := func(c *Channel) { t.DeleteExistingChannel(c.name) }
	c := newChannel(t.name, channelName, t.nsqd, deleteCallback)
	t.channelMap[channelName] = c
	t.chanList = append(t.chanList, c)
	t.nsqd.logf(lg.INFO, "TOPIC(%s): new channel(%s)", t.name, c.name)
	return c, true
}

// GetExistingChannel returns the channel or an error if it does not exist.
func (t *Topic) GetExistingChannel(channelName string) (*Channel, error) {
	t.RLock()
	defer t.RUnlock()
	c, ok := t.channelMap[channelName]
	if !ok {
		return nil, errors.New("channel does not exist")
	}
	return c, nil
}

// DeleteExistingChannel removes a channel, its clients and its data (D-CHAN-02).
// An ephemeral topic goes away with its last channel (D-EPH-01).
func (t *Topic) DeleteExistingChannel(channelName string) error {
	t.Lock()
	c, ok := t.channelMap[channelName]
	if !ok {
		t.Unlock()
		return errors.New("channel does not exist")
	}
	delete(t.channelMap, channelName)
	t.removeFromList(c)
	numChannels := len(t.channelMap)
	t.Unlock()

	t.nsqd.logf(lg.INFO, "TOPIC(%s): deleting channel %s", t.name, c.name)
	c.Delete()
	t.signalChannelUpdate()

	if numChannels == 0 && t.ephemeral {
		go t.deleter.Do(func() { t.deleteCallback(t) })
	}
	return nil
}

// removeFromList drops c from chanList (write lock held); the slice is
// copied because a publisher may still range over the old one.
func (t *Topic) removeFromList(c *Channel) {
	list := make([]*Channel, 0, len(t.chanList))
	for _, x := range t.chanList {
		if x != c {
			list = append(list, x)
		}
	}
	t.chanList = list
}

func (t *Topic) signalChannelUpdate() {
	select {
	case t.channelUpdateChan <- struct{}{}:
	default:
	}
}

// PutMessage queues one message (memory first, then disk).
func (t *Topic) PutMessage(m *Message) error {
	_, err := t.putMessage(m)
	return err
}

// putMessage is PutMessage also telling whether m is held in memory
// afterwards: by a queue, a consumer, or through a copy sharing its body
// (see Channel.put). When it is not, the caller may reuse m and its body.
func (t *Topic) putMessage(m *Message) (held bool, err error) {
	t.RLock()
	defer t.RUnlock()
	if t.exitFlag.Load() {
		return false, errExiting
	}
	if err := t.publishError(); err != nil {
		return false, err
	}
	held, err = t.put(m)
	if err != nil {
		return held, err
	}
	t.messageCount.Add(1)
	t.messageBytes.Add(uint64(len(m.Body)))
	return held, nil
}

// PutMessages queues a batch; a failure part-way keeps what was queued.
// What goes to a disk queue goes there as one write (putBatch).
func (t *Topic) PutMessages(msgs []*Message) error {
	_, err := t.putMessages(msgs)
	return err
}

// putMessages is PutMessages also telling whether all of msgs went to disk
// queues only, so that nothing refers to them any more (an MPUB then
// reuses their blocks, recycleMPUB).
func (t *Topic) putMessages(msgs []*Message) (onlyOnDisk bool, err error) {
	t.RLock()
	defer t.RUnlock()
	if t.exitFlag.Load() {
		return false, errExiting
	}
	if err := t.publishError(); err != nil {
		return false, err
	}
	n, onlyOnDisk, err := t.putBatch(msgs)
	var bytes uint64
	for _, m := range msgs[:n] {
		bytes += uint64(len(m.Body))
	}
	t.messageCount.Add(uint64(n))
	t.messageBytes.Add(bytes)
	return onlyOnDisk && err == nil, err
}

// publishError refuses publishes while the data path cannot be written,
// except for an ephemeral topic, which never writes to it (health.go).
func (t *Topic) publishError() error {
	if t.ephemeral {
		return nil
	}
	return t.nsqd.publishError()
}

func (t *Topic) put(m *Message) (held bool, err error) {
	if t.canDeliverDirect(m) {
		return t.deliverDirect(m)
	}
	if t.memq.tryPut(m) {
		return true, nil
	}
	err = writeMessageToBackend(m, dpubDeliverAt(m), t.backend)
	t.nsqd.SetHealth(err)
	if err != nil {
		t.nsqd.logf(lg.ERROR, "TOPIC(%s) ERROR: failed to write message to backend - %s", t.name, err)
		return false, err
	}
	return false, nil
}

// canDeliverDirect reports whether m may skip the topic's queues (see
// Topic). DPUB messages always queue: through the topic's disk queue they
// keep their due time across a crash. Called with the RLock held.
func (t *Topic) canDeliverDirect(m *Message) bool {
	return len(t.chanList) > 0 && m.deferred == 0 && t.started.Load() && !t.paused.Load() &&
		t.memq.Len() == 0 && backendIsEmpty(t.backend)
}

// deliverDirect copies m to every channel (RLock held). It fails only if
// no channel took it (with the last channel's error, e.g. the disk write's),
// so a publisher is told exactly when nothing was kept. held is fanOut's.
func (t *Topic) deliverDirect(m *Message) (held bool, err error) {
	taken, held, err := t.fanOut(m, t.chanList)
	if taken > 0 {
		return held, nil
	}
	return held, err
}

// fanOut gives every channel its own copy of msg (D-TOPIC-03) and returns
// how many took it, with the last error, and whether any channel holds
// msg or a copy in memory (the copies share its body). The last channel
// gets the original, so the copies are all taken before the original is
// handed to a client pump that may modify it.
func (t *Topic) fanOut(msg *Message, chans []*Channel) (taken int, held bool, lastErr error) {
	for i, channel := range chans {
		chanMsg := msg
		if i < len(chans)-1 {
			chanMsg = msg.copyForChannel()
		}
		if chanMsg.deferred > 0 {
			channel.PutMessageDeferred(chanMsg, chanMsg.deferred)
			taken++
			held = true
			continue
		}
		chanHeld, err := channel.putMessage(chanMsg)
		held = held || chanHeld
		if err != nil {
			lastErr = err
			chanMsg.releaseRecord()
			t.nsqd.logf(lg.ERROR, "TOPIC(%s) ERROR: failed to put msg(%s) to channel(%s) - %s",
				t.name, msg.ID[:], channel.name, err)
			continue
		}
		taken++
	}
	return taken, held, lastErr
}

// Depth is memory + disk (D-QUEUE-01).
func (t *Topic) Depth() int64 { return int64(t.memq.Len()) + t.backend.Depth() }

// BackendDepth is the disk part of Depth.
func (t *Topic) BackendDepth() int64 { return t.backend.Depth() }

// MessageCount is the number of messages published since start.
func (t *Topic) MessageCount() uint64 { return t.messageCount.Load() }

// MessageBytes is the sum of published body sizes since start.
func (t *Topic) MessageBytes() uint64 { return t.messageBytes.Load() }

// messagePump copies every message to every channel. It owns the reads of
// the topic's memory and disk queues.
func (t *Topic) messagePump() {
	defer close(t.pumpDone)

	select {
	case <-t.startChan:
	case <-t.exitChan:
		return
	}

	var chans []*Channel
	var memoryMsgChan chan *Message
	var backendChan <-chan []byte

	refresh := func() {
		t.RLock()
		chans = chans[:0]
		for _, c := range t.channelMap {
			chans = append(chans, c)
		}
		t.RUnlock()
		if len(chans) > 0 && !t.paused.Load() {
			memoryMsgChan = t.memq.ch()
			backendChan = t.backend.ReadChan()
		} else {
			memoryMsgChan = nil
			backendChan = nil
		}
	}
	refresh()

	for {
		var msg *Message
		var ok, fromMemq bool
		select {
		case msg, ok = <-memoryMsgChan:
			if !ok {
				refresh() // the queue moved to a bigger buffer
				continue
			}
			fromMemq = true
		case buf := <-backendChan:
			ref := claimRecord(t.backend, buf, false)
			m, err := decodeDiskMessage(buf)
			if err != nil {
				ref.release()
				t.nsqd.logf(lg.ERROR, "TOPIC(%s): failed to decode message - %s", t.name, err)
				continue
			}
			msg = m
			// the topic's record stays unfinished until every channel
			// has its copy on disk or has finished it (backend_disk.go)
			msg.ref = ref
			if msg.deliverAt > 0 {
				msg.deferred = time.Until(time.Unix(0, msg.deliverAt))
				msg.deliverAt = 0
			}
		case <-t.channelUpdateChan:
			refresh()
			continue
		case <-t.pauseChan:
			refresh()
			continue
		case <-t.exitChan:
			return
		}

		t.fanOut(msg, chans)
		if fromMemq {
			t.memq.done(1)
		}
	}
}

// Delete empties and removes the topic and everything under it (D-TOPIC-04).
func (t *Topic) Delete() error { return t.exit(true) }

// Close flushes the topic and its channels to disk (D-SHUT-01).
func (t *Topic) Close() error { return t.exit(false) }

func (t *Topic) exit(deleted bool) error {
	if !t.exitFlag.CompareAndSwap(false, true) {
		return errExiting
	}
	if deleted {
		t.nsqd.logf(lg.INFO, "TOPIC(%s): deleting", t.name)
		t.nsqd.topicDeleted(t)
	} else {
		t.nsqd.logf(lg.INFO, "TOPIC(%s): closing", t.name)
	}

	close(t.exitChan)
	<-t.pumpDone

	// wait out publishers that passed the exit check
	t.Lock()
	defer t.Unlock()

	if deleted {
		for _, c := range t.channelMap {
			delete(t.channelMap, c.name)
			c.Delete()
		}
		t.chanList = nil
		t.Empty()
		return t.backend.Delete()
	}

	for _, c := range t.channelMap {
		if err := c.Close(); err != nil {
			t.nsqd.logf(lg.ERROR, "channel(%s) close - %s", c.name, err)
		}
	}
	t.flush()
	return t.backend.Close()
}

// Empty drops the topic's own queued messages; channels keep theirs (D-TOPIC-05).
func (t *Topic) Empty() error {
	t.memq.drain(nil)
	return t.backend.Empty()
}

// flush writes the memory queue to disk, keeping DPUB delays.
func (t *Topic) flush() {
	if n := t.memq.Len(); n > 0 {
		t.nsqd.logf(lg.INFO, "TOPIC(%s): flushing %d memory messages to backend", t.name, n)
	}
	t.memq.drain(func(msg *Message) {
		if err := writeMessageToBackend(msg, dpubDeliverAt(msg), t.backend); err != nil {
			t.nsqd.logf(lg.ERROR, "ERROR: failed to write message to backend - %s", err)
		}
	})
}

// dpubDeliverAt is when a DPUB message sitting in the topic is due: its
// publish time plus its delay (0 for ordinary messages).
func dpubDeliverAt(m *Message) int64 {
	if m.deferred <= 0 {
		return 0
	}
	return m.Timestamp + int64(m.deferred)
}

// Pause stops routing messages to channels; publishing still works (D-PAUSE-01).
func (t *Topic) Pause() error { return t.setPaused(true) }

// UnPause resumes routing.
func (t *Topic) UnPause() error { return t.setPaused(false) }

func (t *Topic) setPaused(p bool) error {
	t.paused.Store(p)
	select {
	case t.pauseChan <- struct{}{}:
	default:
	}
	t.nsqd.metadataChanged()
	return nil
}

// IsPaused reports the pause flag.
func (t *Topic) IsPaused() bool { return t.paused.Load() }

// channels returns the channels sorted by name (for stats and metadata).
func (t *Topic) channels() []*Channel {
	t.RLock()
	chans := make([]*Channel, 0, len(t.channelMap))
	for _, c := range t.channelMap {
		chans = append(chans, c)
	}
	t.RUnlock()
	sort.Slice(chans, func(i, j int) bool { return chans[i].name < chans[j].name })
	return chans
}

// GenerateID returns a new message ID, waiting out clock hiccups (D-ID-01).
func (t *Topic) GenerateID() MessageID {
	var failures int
	for {
		id, err := t.idFactory.next()
		if err == nil {
			return id.Hex()
		}
		if failures%10000 == 0 {
			t.nsqd.logf(lg.ERROR, "TOPIC(%s): failed to create guid - %s", t.name, err)
		}
		failures++
		time.Sleep(time.Millisecond)
	}
}
