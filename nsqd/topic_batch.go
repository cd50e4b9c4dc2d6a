package nsqd

import "github.com/ournsq/nsq/internal/lg"

// putBatch is put for the messages of one MPUB (RLock held): straight to
// the channels if the topic has nothing queued (as deliverDirect), else
// into the memory queue and the rest into the topic's disk queue. Either
// way whatever spills over to a disk queue is written at once, as batch
// records (message_batch.go), not one record per message. It returns how
// many messages, from the first, were kept, and whether they all went to
// disk queues only (no memory queue or client holds any of them).
func (t *Topic) putBatch(msgs []*Message) (int, bool, error) {
	if len(msgs) < 2 {
		return t.putEach(msgs)
	}
	for _, m := range msgs {
		if m.deferred != 0 {
			return t.putEach(msgs)
		}
	}
	if t.canDeliverDirect(msgs[0]) {
		return t.fanOutBatch(msgs, t.chanList)
	}
	i := t.memq.tryPutMany(msgs)
	if i == len(msgs) {
		return i, false, nil
	}
	n, err := writeMessagesToBackend(msgs[i:], t.backend)
	t.nsqd.SetHealth(err)
	if err != nil {
		t.nsqd.logf(lg.ERROR, "TOPIC(%s) ERROR: failed to write %d messages to backend - %s", t.name, len(msgs)-i-n, err)
	}
	return i + n, i == 0, err
}

// putEach puts the messages one by one (where they went is not tracked).
func (t *Topic) putEach(msgs []*Message) (int, bool, error) {
	for i, m := range msgs {
		if _, err := t.put(m); err != nil {
			return i, false, err
		}
	}
	return len(msgs), false, nil
}

// fanOutBatch is deliverDirect for several messages: every channel gets
// its own copies of all of them at once (Channel.PutMessages), the last
// channel the originals, after the copies are all made. A message is kept
// if any channel took it; the count returned is of the messages kept,
// from the first (a channel that fails takes a prefix of the batch).
func (t *Topic) fanOutBatch(msgs []*Message, chans []*Channel) (int, bool, error) {
	kept := 0
	onlyOnDisk := true
	var lastErr error
	var copies []*Message
	for i, channel := range chans {
		batch := msgs
		if i < len(chans)-1 {
			if copies == nil {
				copies = make([]*Message, len(msgs))
			}
			for j, m := range msgs {
				copies[j] = m.copyForChannel()
			}
			batch = copies
		}
		n, inMemory, err := channel.putMessages(batch)
		if inMemory > 0 {
			onlyOnDisk = false
		}
		if err != nil {
			lastErr = err
			t.nsqd.logf(lg.ERROR, "TOPIC(%s) ERROR: failed to put %d messages to channel(%s) - %s",
				t.name, len(batch)-n, channel.name, err)
		}
		kept = max(kept, n)
	}
	if kept == len(msgs) {
		return kept, onlyOnDisk, nil
	}
	return kept, false, lastErr
}
