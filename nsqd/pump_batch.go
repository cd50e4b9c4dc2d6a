package nsqd

import (
	"math/rand/v2"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// Batched delivery and acknowledgement.
//
// The pump and the IOLoop of a connection run on different cores while a
// consumer drains a backlog, and both touch the channel's in-flight set
// and the client's counters for every message. Done one message at a
// time, the in-flight mutex passed between them about a million times a
// second and they kept parking on it. So the pump takes a wake-up's
// messages (up to pumpBurst) into a deliveryBatch, puts them in flight
// under one lock and writes their frames under one write lock; the IOLoop
// gathers consecutive FINs into a finBatch and finishes them under one
// lock. What a client sees does not change: a message is in flight before
// its frame can reach the socket, and a FIN is applied before any later
// command runs, before an error is answered and before the IOLoop could
// block reading.

// deliveryBatch is the pump's scratch space for one wake-up's messages.
type deliveryBatch struct {
	msgs [pumpBurst]*Message
	n    int
	// fromMemq: the messages came from the channel's memory queue, which
	// is told once they are handled (memQueue.done)
	fromMemq int
}

func (b *deliveryBatch) add(m *Message) { b.msgs[b.n] = m; b.n++ }

// readyRoom is how many messages c can take now (at most pumpBurst, and at
// least one: the pump's select only listens while c is ready, and the
// message it received is delivered as before). FINs only add room while
// the batch is gathered, so counting from this snapshot never sends more
// than RDY allows.
func (c *clientV2) readyRoom(ch *Channel) int {
	room := c.readyCount.Load() - c.inFlightCount.Load()
	if ch.IsPaused() || room < 1 {
		return 1
	}
	return int(min(room, pumpBurst))
}

// deliverBatch marks the messages of one wake-up in flight for c and
// buffers their frames, in order (D-TCP-49).
func (p *protocolV2) deliverBatch(c *clientV2, ch *Channel, b *deliveryBatch, sampleRate int32, msgTimeout time.Duration, now time.Time) error {
	// publishers delivering directly wait for this batch (direct.go)
	c.deliverTok.Lock()
	defer c.deliverTok.Unlock()
	msgs := b.msgs[:b.n]
	defer func(all []*Message) {
		clear(all) // delivered messages are not kept alive by the pump
		b.n = 0
		ch.memq.done(b.fromMemq)
		b.fromMemq = 0
	}(msgs)
	if sampleRate > 0 {
		// sampling drops a message for this channel, as NSQ does
		kept := msgs[:0]
		for _, m := range msgs {
			if rand.Int32N(100) > sampleRate {
				m.releaseRecord() // dropped: its disk record is finished
				continue
			}
			kept = append(kept, m)
		}
		msgs = kept
	}
	if len(msgs) == 0 {
		return nil
	}
	for _, m := range msgs {
		m.Attempts++
	}
	msgs, dups := ch.startInFlightBatch(msgs, c.ID, msgTimeout, now)
	for _, m := range dups {
		// the same ID is already out on this channel: retry it later
		// rather than lose or double-track it
		p.nsqd.logf(lg.WARN, "PROTOCOL(V2): [%s] %s - deferring msg %s", c, errAlreadyInFlt, m.ID[:])
		m.Attempts--
		ch.StartDeferredTimeout(m, msgTimeout)
	}
	if len(msgs) == 0 {
		return nil
	}
	c.inFlightCount.Add(int64(len(msgs)))
	c.messageCount.Add(uint64(len(msgs)))
	return c.writeMessages(msgs)
}

// startInFlightBatch is startInFlightAt for several messages under one
// lock. It returns the messages now in flight (msgs compacted in place,
// order kept) and those whose ID was already in flight (nil if none).
func (c *Channel) startInFlightBatch(msgs []*Message, clientID int64, timeout time.Duration, now time.Time) (started, dups []*Message) {
	at := now.UnixNano()
	due := at + int64(timeout)
	for _, m := range msgs {
		m.clientID = clientID
		m.deliveredAt = at
		m.pri = due
	}
	started = msgs[:0]
	c.inFlightMutex.Lock()
	for _, m := range msgs {
		if !c.inFlightMessages.addNew(m) {
			dups = append(dups, m)
			continue
		}
		c.inFlight.Push(m)
		started = append(started, m)
	}
	c.inFlightMutex.Unlock()
	if len(started) > 0 {
		c.noteDue(due)
	}
	return started, dups
}

// writeMessages buffers message frames under one write lock (flushed by
// the pump's rules, or at once when output buffering is off).
func (c *clientV2) writeMessages(msgs []*Message) error {
	c.writeLock.Lock()
	defer c.writeLock.Unlock()
	for _, m := range msgs {
		if err := c.writeMessageLocked(m); err != nil {
			return err
		}
	}
	return nil
}

// finBatchSize bounds how many FINs wait to be applied together.
const finBatchSize = 64

// finBatch holds FINs read but not applied yet (IOLoop-owned).
type finBatch struct {
	ids [finBatchSize]MessageID
	n   int
}

// finishPending applies the FINs c has gathered, in order, as FIN does
// each: a FIN that fails is answered E_FIN_FAILED (non-fatal). The error
// returned is a failure to send such an answer.
func (p *protocolV2) finishPending(c *clientV2) error {
	fb := &c.fins
	if fb.n == 0 {
		return nil
	}
	ids := fb.ids[:fb.n]
	fb.n = 0
	var errs [finBatchSize]error
	done := c.channel.finishMessages(c.ID, ids, errs[:len(ids)])
	if done > 0 {
		c.finishCount.Add(uint64(done))
		c.inFlightDoneN(int64(done))
	}
	if done == len(ids) {
		return nil
	}
	for i, err := range errs[:len(ids)] {
		if err == nil {
			continue
		}
		cerr := nonFatal("E_FIN_FAILED", "FIN %s failed %s", string(ids[i][:]), err)
		p.nsqd.logf(lg.ERROR, "[%s] - %s", c, cerr)
		if sendErr := c.sendNow(frameTypeError, []byte(cerr.Error())); sendErr != nil {
			return sendErr
		}
	}
	return nil
}

// finishMessages is FinishMessage for each of ids under one lock; errs[i]
// gets the error of ids[i] (errs has len(ids) entries). It returns how
// many were finished.
func (c *Channel) finishMessages(clientID int64, ids []MessageID, errs []error) int {
	var popped [finBatchSize]*Message
	n := 0
	c.inFlightMutex.Lock()
	for i, id := range ids {
		m, err := c.popInFlightLocked(clientID, id)
		if err != nil {
			errs[i] = err
			continue
		}
		popped[n] = m
		n++
	}
	c.inFlightMutex.Unlock()
	for _, m := range popped[:n] {
		c.recordE2E(m)
		m.releaseRecord()
	}
	return n
}
