// Package netdeadline moves connection deadlines lazily: a deadline set
// for every read or write costs a clock read and a runtime timer update.
package netdeadline

import "time"

// Slack is how long a read or write deadline may go without being moved
// forward; see Lazy.
const Slack = 100 * time.Millisecond

// Lazy decides when to move a connection's read or write deadline.
//
// NSQ moves the read deadline to now+2×heartbeat before every command and
// the write deadline to now+heartbeat before every frame (D-TCP-08). Each
// move is a time.Now and an update of the runtime's poller timer: 9 % and
// 6 % of nsqd's CPU when draining a backlog (docs/performance.md). We move
// a deadline at most every Slack, and then to
// now+timeout+Slack. So whenever a read or write starts, its
// deadline is at least timeout away (less than Slack has passed
// since it was set): no client is cut off earlier than NSQ would cut it
// off, and none more than Slack later. With heartbeats off
// (timeout <= 0) the deadline is cleared once rather than every time.
type Lazy struct {
	armed   bool          // a deadline may be set on the connection
	timeout time.Duration // the timeout it was set for
	at      time.Time     // when it was set
}

// Next returns the deadline to set before a read or write with timeout
// (<= 0: none), or false when the one in place will do.
func (d *Lazy) Next(timeout time.Duration) (time.Time, bool) {
	if timeout <= 0 {
		if !d.armed {
			return time.Time{}, false
		}
		d.armed = false
		return time.Time{}, true
	}
	// time.Since reads only the monotonic clock: half a time.Now
	if d.armed && d.timeout == timeout && time.Since(d.at) < Slack {
		return time.Time{}, false
	}
	now := time.Now()
	d.armed, d.timeout, d.at = true, timeout, now
	return now.Add(timeout + Slack), true
}

// Forget makes the next call set (or clear) the deadline, whatever has
// been left on the connection.
func (d *Lazy) Forget() {
	d.armed, d.timeout = true, -1
}
