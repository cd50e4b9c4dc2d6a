package nsqd

import "github.com/ournsq/nsq/internal/lg"

// PutMessages queues several messages (none deferred) at once, as
// PutMessage each: a waiting consumer or the memory queue first, and once
// that is full the rest goes to disk as one write (batch records,
// message_batch.go) instead of one record per message. It returns how
// many messages, from the first, the channel took; on an error the rest
// were dropped (their disk records are finished, as PutMessage's).
func (c *Channel) PutMessages(msgs []*Message) (int, error) {
	n, _, err := c.putMessages(msgs)
	return n, err
}

// putMessages is PutMessages also returning how many messages went to
// memory (the rest of those taken are on disk only).
func (c *Channel) putMessages(msgs []*Message) (taken, inMemory int, err error) {
	c.exitMutex.RLock()
	defer c.exitMutex.RUnlock()
	if c.Exiting() {
		return 0, 0, errExiting
	}
	i := 0
	if c.topologyAware {
		for ; i < len(msgs) && c.putMemory(msgs[i]); i++ {
		}
	} else {
		i = c.memq.tryPutMany(msgs)
	}
	if i == len(msgs) {
		c.messageCount.Add(uint64(i))
		return i, i, nil
	}
	rest := msgs[i:]
	n, err := writeMessagesToBackend(rest, c.backend)
	c.nsqd.SetHealth(err)
	// on disk now, or dropped: either way the records they came from are
	// finished (backend_disk.go)
	for _, m := range rest {
		m.releaseRecord()
	}
	c.messageCount.Add(uint64(i + n))
	if err != nil {
		c.nsqd.logf(lg.ERROR, "CHANNEL(%s): failed to write %d messages to backend - %s", c.name, len(rest)-n, err)
	}
	return i + n, i, err
}

// putMemory is the part of put before the disk: the topology hand-off
// queues (D-TOPO-01), then the memory queue; false means both are full.
func (c *Channel) putMemory(m *Message) bool {
	if c.topologyAware {
		select {
		case c.zoneLocalMsgChan <- m:
			return true
		default:
		}
		select {
		case c.zoneLocalMsgChan <- m:
			return true
		case c.regionLocalMsgChan <- m:
			return true
		default:
		}
	}
	return c.memq.tryPut(m)
}
