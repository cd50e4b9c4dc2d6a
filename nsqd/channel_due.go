package nsqd

// noteDue lowers the channel's nextDue to t if t is earlier, and then
// wakes the queue scanner if it would otherwise sleep past t. Called after
// t's message is in its heap and the heap lock is released (lock order:
// dueMu before the heap mutexes).
//
// The common case (a deadline later than one already noted, e.g. every
// delivery under a uniform msg-timeout) takes no lock: refreshDue
// re-peeks the heaps after it stores, so a push it missed in its first
// peek is either seen by the re-peek, or happened after the store and
// therefore reads the stored value here and lowers it under dueMu.
func (c *Channel) noteDue(t int64) {
	if cur := c.nextDue.Load(); cur != 0 && cur <= t {
		return
	}
	c.dueMu.Lock()
	cur := c.nextDue.Load()
	lowered := cur == 0 || t < cur
	if lowered {
		c.nextDue.Store(t)
	}
	c.dueMu.Unlock()
	if lowered {
		c.nsqd.scanner.wakeIfBefore(t)
	}
}

// refreshDue recomputes nextDue from the heap roots after a scan. A push
// racing with it either lands in a heap before the first peek, or its
// noteDue runs after the store (locked path, or it read the stored value),
// or it landed between the two peeks and the second peek lowers nextDue:
// it is never lost (see noteDue's lock-free path).
func (c *Channel) refreshDue() int64 {
	c.dueMu.Lock()
	defer c.dueMu.Unlock()
	due := c.earliestDue()
	c.nextDue.Store(due)
	if again := c.earliestDue(); again != 0 && (due == 0 || again < due) {
		due = again
		c.nextDue.Store(due)
	}
	return due
}

// earliestDue is the earliest heap root (0 = both heaps empty).
func (c *Channel) earliestDue() int64 {
	var due int64
	c.inFlightMutex.Lock()
	if m := c.inFlight.Peek(); m != nil {
		due = m.pri
	}
	c.inFlightMutex.Unlock()
	c.deferredMutex.Lock()
	if m := c.deferredQ.Peek(); m != nil && (due == 0 || m.pri < due) {
		due = m.pri
	}
	c.deferredMutex.Unlock()
	return due
}
