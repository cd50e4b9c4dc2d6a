package netdeadline

import (
	"testing"
	"time"
)

func TestLazyDeadline(t *testing.T) {
	var d Lazy
	d.Forget()
	// heartbeats off: the deadline left on the connection is cleared once
	if dl, ok := d.Next(0); !ok || !dl.IsZero() {
		t.Fatalf("Next(0) after forget = %v, %v; want a zero deadline", dl, ok)
	}
	if _, ok := d.Next(0); ok {
		t.Fatal("Next(0) clears again")
	}
	const timeout = time.Second
	before := time.Now()
	dl, ok := d.Next(timeout)
	if !ok || dl.Before(before.Add(timeout+Slack)) {
		t.Fatalf("Next(%v) = %v, %v; want >= %v", timeout, dl, ok, before.Add(timeout+Slack))
	}
	// within Slack the deadline in place still leaves >= timeout
	if _, ok := d.Next(timeout); ok {
		t.Fatal("deadline moved again at once")
	}
	if time.Until(dl) < timeout {
		t.Fatal("deadline in place is less than timeout away")
	}
	// a new timeout (IDENTIFY) moves it at once
	if dl2, ok := d.Next(2 * timeout); !ok || dl2.Before(before.Add(2*timeout)) {
		t.Fatalf("Next(2s) = %v, %v", dl2, ok)
	}
	time.Sleep(Slack)
	if _, ok := d.Next(2 * timeout); !ok {
		t.Fatalf("deadline not moved after %v", Slack)
	}
	if dl, ok := d.Next(0); !ok || !dl.IsZero() {
		t.Fatal("heartbeats turned off: deadline not cleared")
	}
	d.Forget()
	if _, ok := d.Next(timeout); !ok {
		t.Fatal("next after forget did not set the deadline")
	}
}
