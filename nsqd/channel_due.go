package nsqd

// noteDue lowers the channel's nextDue to t if t is earlier, and then
// wakes the queue scanner if it would otherwise sleep past t. Called after
// the heap lock is released (lock order: dueMu before the heap mutexes).
func (c *Channel) noteDue(t int64) {
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
// racing with it either lands in a heap before the peek, or waits on dueMu
// and lowers nextDue after the store: it is never lost.
func (c *Channel) refreshDue() int64 {
	c.dueMu.Lock()
	defer c.dueMu.Unlock()
	var due int64
	c.inFlightMutex.Lock()
	if len(c.inFlightPQ) > 0 {
		due = c.inFlightPQ[0].pri
	}
	c.inFlightMutex.Unlock()
	c.deferredMutex.Lock()
	if len(c.deferredPQ) > 0 && (due == 0 || c.deferredPQ[0].pri < due) {
		due = c.deferredPQ[0].pri
	}
	c.deferredMutex.Unlock()
	c.nextDue.Store(due)
	return due
}
