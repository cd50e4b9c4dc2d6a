package nsqd_test

// Client-level tests: nsqd driven by the go-nsq v1.1.0 Producer and Consumer,
// the client library every bundled app uses (spec A-01..A-03). Spec rows are
// cited per test; see docs/conformance-nsqd-client.md.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/nsqd"
)

// ---------------------------------------------------------------------------
// shared helpers (prefix "cl" to stay clear of other nsqd_test files)

// clLogger forwards log lines to t.Log until the test has finished; lines
// written by goroutines that outlive the test are dropped instead of
// panicking in the testing package.
type clLogger struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	closed bool
}

func newCLLogger(t testing.TB, prefix string) *clLogger {
	l := &clLogger{t: t, prefix: prefix}
	t.Cleanup(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
	})
	return l
}

func (l *clLogger) Output(_ int, s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Log(l.prefix + s)
	}
	return nil
}

var _ lg.Logger = (*clLogger)(nil)

// clOpts returns options for a test daemon: loopback, port 0, a private data
// path, HTTP (if ever built) also on loopback port 0.
func clOpts(t testing.TB, dataPath string) *nsqd.Options {
	opts := nsqd.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.HTTPSAddress = "127.0.0.1:0"
	opts.BroadcastAddress = "127.0.0.1"
	if dataPath == "" {
		dataPath = t.TempDir()
	}
	opts.DataPath = dataPath
	opts.LogLevel = lg.INFO
	opts.Logger = newCLLogger(t, "nsqd: ")
	return opts
}

// clNode is a running in-process nsqd. exit() may be called any number of
// times; Exit itself runs exactly once (also from t.Cleanup).
type clNode struct {
	t        testing.TB
	n        *nsqd.NSQD
	opts     *nsqd.Options
	once     sync.Once
	mainDone chan error
}

func clStart(t testing.TB, opts *nsqd.Options) *clNode {
	t.Helper()
	n, err := nsqd.New(opts)
	if err != nil {
		t.Fatalf("nsqd.New: %v", err)
	}
	c := &clNode{t: t, n: n, opts: opts, mainDone: make(chan error, 1)}
	go func() { c.mainDone <- n.Main() }()
	t.Cleanup(c.exit)
	return c
}

func (c *clNode) addr() string { return c.n.RealTCPAddr().String() }

func (c *clNode) exit() {
	c.once.Do(func() {
		done := make(chan struct{})
		go func() { c.n.Exit(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			c.t.Errorf("nsqd.Exit did not return within 20s")
			return
		}
		select {
		case err := <-c.mainDone:
			if err != nil {
				c.t.Logf("nsqd.Main returned: %v", err)
			}
		case <-time.After(10 * time.Second):
			c.t.Errorf("nsqd.Main did not return within 10s after Exit")
		}
	})
}

// clEventually polls cond every 10ms until it is true or timeout elapses.
func clEventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...interface{}) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out after %v waiting for: %s", timeout, fmt.Sprintf(format, args...))
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func clConfig() *nsq.Config {
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 200
	cfg.DialTimeout = 2 * time.Second
	return cfg
}

// clTimingConfig is for tests that time deliveries: with max_in_flight 1 the
// server flushes each message at once (the client is no longer ready,
// D-TCP-50) instead of up to output_buffer_timeout (250ms) later, so the
// client sees a message when the server starts its timeout.
func clTimingConfig() *nsq.Config {
	cfg := clConfig()
	cfg.MaxInFlight = 1
	return cfg
}

func clProducer(t testing.TB, addr string) *nsq.Producer {
	t.Helper()
	p, err := nsq.NewProducer(addr, clConfig())
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	p.SetLogger(newCLLogger(t, "producer: "), nsq.LogLevelWarning)
	t.Cleanup(p.Stop)
	return p
}

// clConsumer connects a go-nsq consumer to one nsqd. It is stopped (CLS,
// bounded wait) in t.Cleanup, which runs before the daemon's Exit when the
// daemon was started first.
func clConsumer(t testing.TB, addr, topic, channel string, cfg *nsq.Config, h nsq.Handler) *nsq.Consumer {
	t.Helper()
	if cfg == nil {
		cfg = clConfig()
	}
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	c.SetLogger(newCLLogger(t, "consumer "+topic+"/"+channel+": "), nsq.LogLevelWarning)
	c.AddHandler(h)
	if err := c.ConnectToNSQD(addr); err != nil {
		t.Fatalf("ConnectToNSQD(%s) %s/%s: %v", addr, topic, channel, err)
	}
	t.Cleanup(func() {
		c.Stop()
		select {
		case <-c.StopChan:
		case <-time.After(10 * time.Second):
			t.Logf("consumer %s/%s did not stop within 10s", topic, channel)
		}
	})
	return c
}

// clSet counts deliveries per body.
type clSet struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
}

func newCLSet() *clSet { return &clSet{counts: make(map[string]int)} }

func (s *clSet) add(body string) {
	s.mu.Lock()
	s.counts[body]++
	s.total++
	s.mu.Unlock()
}

func (s *clSet) unique() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counts)
}

func (s *clSet) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return m
}

// clCheckExactlyOnce reports duplicates, missing and unexpected bodies.
func clCheckExactlyOnce(t testing.TB, what string, got map[string]int, want []string) {
	t.Helper()
	wantSet := make(map[string]bool, len(want))
	var missing []string
	for _, b := range want {
		wantSet[b] = true
		if got[b] == 0 {
			missing = append(missing, b)
		}
	}
	var dups, extra []string
	for b, n := range got {
		if !wantSet[b] {
			extra = append(extra, b)
		}
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", b, n))
		}
	}
	sort.Strings(missing)
	sort.Strings(dups)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("%s: %d of %d messages never delivered, e.g. %v", what, len(missing), len(want), clHead(missing))
	}
	if len(dups) > 0 {
		t.Errorf("%s: %d messages delivered more than once, e.g. %v", what, len(dups), clHead(dups))
	}
	if len(extra) > 0 {
		t.Errorf("%s: %d unexpected bodies delivered, e.g. %v", what, len(extra), clHead(extra))
	}
}

func clHead(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// clBodies returns n bodies "<prefix>-00000".. .
func clBodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

// clPublishAsync publishes bodies with pipelined PUBs (PublishAsync) and
// checks every transaction succeeded.
func clPublishAsync(t testing.TB, p *nsq.Producer, topic string, bodies []string) {
	t.Helper()
	done := make(chan *nsq.ProducerTransaction, len(bodies))
	for _, b := range bodies {
		if err := p.PublishAsync(topic, []byte(b), done); err != nil {
			t.Fatalf("PublishAsync: %v", err)
		}
	}
	timeout := time.After(60 * time.Second)
	for i := range bodies {
		select {
		case tr := <-done:
			if tr.Error != nil {
				t.Fatalf("PUB %d failed: %v", i, tr.Error)
			}
		case <-timeout:
			t.Fatalf("only %d of %d PUBs acknowledged within 60s", i, len(bodies))
		}
	}
}

// clMultiPublish publishes bodies with MPUB batches of batch messages.
func clMultiPublish(t testing.TB, p *nsq.Producer, topic string, bodies []string, batch int) {
	t.Helper()
	for i := 0; i < len(bodies); i += batch {
		end := min(i+batch, len(bodies))
		msgs := make([][]byte, 0, end-i)
		for _, b := range bodies[i:end] {
			msgs = append(msgs, []byte(b))
		}
		if err := p.MultiPublish(topic, msgs); err != nil {
			t.Fatalf("MPUB of messages %d..%d: %v", i, end-1, err)
		}
	}
}

func clWaitUnique(t testing.TB, s *clSet, n int, timeout time.Duration, what string) {
	t.Helper()
	clEventually(t, timeout, func() bool { return s.unique() >= n }, "%s: %d distinct messages (have %d)", what, n, s.unique())
}

// ---------------------------------------------------------------------------
// 1. PUB + MPUB, exactly-once per channel, fan-out, load sharing
//
// D-TCP-40, D-TCP-41, D-TCP-35, D-TCP-34, D-TOPIC-03, D-TCP-49, A-02, A-03.

func TestGoNSQPubMPubExactlyOnce(t *testing.T) {
	node := clStart(t, clOpts(t, ""))
	addr := node.addr()
	const topicName = "gonsq_fanout"

	topic := node.n.GetTopic(topicName)
	ch1 := topic.GetChannel("one")
	ch2 := topic.GetChannel("two")

	seen1 := newCLSet()
	seen2a, seen2b, seen2 := newCLSet(), newCLSet(), newCLSet()
	clConsumer(t, addr, topicName, "one", nil, nsq.HandlerFunc(func(m *nsq.Message) error {
		seen1.add(string(m.Body))
		return nil
	}))
	clConsumer(t, addr, topicName, "two", nil, nsq.HandlerFunc(func(m *nsq.Message) error {
		seen2a.add(string(m.Body))
		seen2.add(string(m.Body))
		return nil
	}))
	clConsumer(t, addr, topicName, "two", nil, nsq.HandlerFunc(func(m *nsq.Message) error {
		seen2b.add(string(m.Body))
		seen2.add(string(m.Body))
		return nil
	}))
	clEventually(t, 5*time.Second, func() bool { return ch1.ClientCount() == 1 && ch2.ClientCount() == 2 },
		"clients subscribed (one: %d/1, two: %d/2)", ch1.ClientCount(), ch2.ClientCount())

	p := clProducer(t, addr)
	pubBodies := clBodies("pub", 10000)
	mpubBodies := clBodies("mpub", 10000)
	start := time.Now()
	clPublishAsync(t, p, topicName, pubBodies)
	clMultiPublish(t, p, topicName, mpubBodies, 100)
	t.Logf("published 20000 messages in %v", time.Since(start))

	all := append(append([]string{}, pubBodies...), mpubBodies...)
	clWaitUnique(t, seen1, len(all), 45*time.Second, "channel one")
	clWaitUnique(t, seen2, len(all), 45*time.Second, "channel two")
	// give stray duplicates (there must be none) a moment to show up
	time.Sleep(300 * time.Millisecond)
	t.Logf("delivered in %v", time.Since(start))

	clCheckExactlyOnce(t, "channel one", seen1.snapshot(), all)
	clCheckExactlyOnce(t, "channel two (union of two consumers)", seen2.snapshot(), all)
	a, b := seen2a.snapshot(), seen2b.snapshot()
	if len(a) == 0 || len(b) == 0 {
		t.Errorf("two consumers on one channel should share the load: got %d and %d messages", len(a), len(b))
	}
	for body := range a {
		if b[body] > 0 {
			t.Errorf("message %q delivered to both consumers of channel two", body)
			break
		}
	}
	t.Logf("channel two split: %d / %d", len(a), len(b))

	if got := topic.MessageCount(); got != 20000 {
		t.Errorf("topic MessageCount = %d, want 20000", got)
	}
	for _, c := range []struct {
		name string
		ch   *nsqd.Channel
	}{{"one", ch1}, {"two", ch2}} {
		ch := c.ch
		if got := ch.MessageCount(); got != 20000 {
			t.Errorf("channel %s MessageCount = %d, want 20000", c.name, got)
		}
		clEventually(t, 5*time.Second, func() bool { return ch.Depth() == 0 && ch.InFlightCount() == 0 },
			"channel %s drained (depth %d, in flight %d)", c.name, ch.Depth(), ch.InFlightCount())
		if got := ch.RequeueCount() + ch.TimeoutCount(); got != 0 {
			t.Errorf("channel %s requeue+timeout = %d, want 0", c.name, got)
		}
	}
	if got := topic.Depth(); got != 0 {
		t.Errorf("topic depth = %d, want 0", got)
	}
}

// ---------------------------------------------------------------------------
// 2. REQ with delay, message timeout, TOUCH, DPUB
//
// D-TCP-36, D-REQ-01, D-DEF-01, D-TCP-53, D-INFL-02, D-TCP-18, D-TCP-37,
// D-INFL-03, D-TCP-43, D-DEF-02, D-TCP-47, Q-14 (fires on time on new channels).

// clLateSlack bounds how late a timeout or deferred message may fire. NSQ's
// scan loop runs every 100ms; Q-14 (our policy) forbids the ~5s lag NSQ shows
// on new channels.
const clLateSlack = 1500 * time.Millisecond

type clDelivery struct {
	msg *nsq.Message
	at  time.Time
}

func TestGoNSQRequeueTimeoutTouchDefer(t *testing.T) {
	node := clStart(t, clOpts(t, ""))
	addr := node.addr()
	p := clProducer(t, addr)

	t.Run("REQ_delay", func(t *testing.T) {
		t.Parallel()
		const topicName, delay = "gonsq_req", 1500 * time.Millisecond
		ch := node.n.GetTopic(topicName).GetChannel("c")
		deliveries := make(chan clDelivery, 10)
		var reqAt time.Time
		clConsumer(t, addr, topicName, "c", clTimingConfig(), nsq.HandlerFunc(func(m *nsq.Message) error {
			now := time.Now()
			if m.Attempts == 1 {
				m.DisableAutoResponse()
				reqAt = time.Now()
				m.RequeueWithoutBackoff(delay)
			}
			deliveries <- clDelivery{m, now}
			return nil
		}))
		if err := p.Publish(topicName, []byte("requeue-me")); err != nil {
			t.Fatalf("PUB: %v", err)
		}
		first := clRecv(t, deliveries, 5*time.Second, "first delivery")
		if first.msg.Attempts != 1 {
			t.Errorf("first delivery attempts = %d, want 1", first.msg.Attempts)
		}
		clEventually(t, time.Second, func() bool { return ch.DeferredCount() == 1 }, "deferred_count 1 after REQ (have %d)", ch.DeferredCount())
		second := clRecv(t, deliveries, delay+5*time.Second, "redelivery after REQ")
		waited := second.at.Sub(reqAt)
		t.Logf("redelivered %v after REQ %v", waited, delay)
		if waited < delay {
			t.Errorf("REQ %v: redelivered after only %v", delay, waited)
		}
		if waited > delay+clLateSlack {
			t.Errorf("REQ %v: redelivered only after %v (Q-14: deferred must fire on time)", delay, waited)
		}
		if second.msg.Attempts != 2 {
			t.Errorf("redelivery attempts = %d, want 2", second.msg.Attempts)
		}
		if second.msg.ID != first.msg.ID || string(second.msg.Body) != "requeue-me" {
			t.Errorf("redelivery id/body %s/%q, want %s/%q", second.msg.ID, second.msg.Body, first.msg.ID, "requeue-me")
		}
		if got := ch.RequeueCount(); got != 1 {
			t.Errorf("channel requeue_count = %d, want 1", got)
		}
		clExpectNone(t, deliveries, 300*time.Millisecond, "after FIN")
	})

	t.Run("msg_timeout", func(t *testing.T) {
		t.Parallel()
		const topicName, timeout = "gonsq_timeout", time.Second
		ch := node.n.GetTopic(topicName).GetChannel("c")
		cfg := clTimingConfig()
		cfg.MsgTimeout = timeout
		deliveries := make(chan clDelivery, 10)
		clConsumer(t, addr, topicName, "c", cfg, nsq.HandlerFunc(func(m *nsq.Message) error {
			now := time.Now()
			if m.Attempts == 1 {
				m.DisableAutoResponse() // neither FIN nor REQ nor TOUCH
			}
			deliveries <- clDelivery{m, now}
			return nil
		}))
		if err := p.Publish(topicName, []byte("time-me-out")); err != nil {
			t.Fatalf("PUB: %v", err)
		}
		first := clRecv(t, deliveries, 5*time.Second, "first delivery")
		second := clRecv(t, deliveries, timeout+5*time.Second, "redelivery after msg_timeout")
		// the stale copy still counts in go-nsq's in-flight tally: answer it
		// (nsqd replies a non-fatal E_FIN_FAILED) so the consumer can stop
		defer first.msg.Finish()
		waited := second.at.Sub(first.at)
		t.Logf("redelivered %v after first delivery (msg_timeout %v)", waited, timeout)
		if waited < timeout-100*time.Millisecond {
			t.Errorf("msg_timeout %v: redelivered after only %v", timeout, waited)
		}
		if waited > timeout+clLateSlack {
			t.Errorf("msg_timeout %v: redelivered only after %v (Q-14: timeouts must fire on time)", timeout, waited)
		}
		if second.msg.Attempts != 2 {
			t.Errorf("redelivery attempts = %d, want 2", second.msg.Attempts)
		}
		if second.msg.ID != first.msg.ID {
			t.Errorf("redelivered id %s, want %s", second.msg.ID, first.msg.ID)
		}
		if got := ch.TimeoutCount(); got != 1 {
			t.Errorf("channel timeout_count = %d, want 1", got)
		}
		clExpectNone(t, deliveries, 300*time.Millisecond, "after FIN of the redelivery")
	})

	t.Run("TOUCH", func(t *testing.T) {
		t.Parallel()
		const topicName, timeout, hold = "gonsq_touch", time.Second, 3 * time.Second
		ch := node.n.GetTopic(topicName).GetChannel("c")
		cfg := clTimingConfig()
		cfg.MsgTimeout = timeout
		deliveries := make(chan clDelivery, 10)
		clConsumer(t, addr, topicName, "c", cfg, nsq.HandlerFunc(func(m *nsq.Message) error {
			deliveries <- clDelivery{m, time.Now()}
			if m.Attempts > 1 {
				return nil // a redelivery: FIN it, the test already failed
			}
			m.DisableAutoResponse()
			go func() {
				tick := time.NewTicker(300 * time.Millisecond)
				defer tick.Stop()
				end := time.After(hold)
				for {
					select {
					case <-tick.C:
						m.Touch()
					case <-end:
						m.Finish()
						return
					}
				}
			}()
			return nil
		}))
		if err := p.Publish(topicName, []byte("touch-me")); err != nil {
			t.Fatalf("PUB: %v", err)
		}
		first := clRecv(t, deliveries, 5*time.Second, "first delivery")
		if first.msg.Attempts != 1 {
			t.Errorf("attempts = %d, want 1", first.msg.Attempts)
		}
		// held (and touched) for 3 × msg_timeout, then FINed; must never come back
		clExpectNone(t, deliveries, hold+timeout+500*time.Millisecond, "while TOUCHed every 300ms and after FIN")
		if got := ch.TimeoutCount(); got != 0 {
			t.Errorf("channel timeout_count = %d, want 0 (TOUCH must postpone the timeout)", got)
		}
		if got := ch.InFlightCount(); got != 0 {
			t.Errorf("channel in_flight_count = %d after FIN, want 0", got)
		}
	})

	t.Run("DPUB", func(t *testing.T) {
		t.Parallel()
		const topicName, delay = "gonsq_dpub", 1500 * time.Millisecond
		ch := node.n.GetTopic(topicName).GetChannel("c")
		deliveries := make(chan clDelivery, 10)
		clConsumer(t, addr, topicName, "c", clTimingConfig(), nsq.HandlerFunc(func(m *nsq.Message) error {
			deliveries <- clDelivery{m, time.Now()}
			return nil
		}))
		clEventually(t, 5*time.Second, func() bool { return ch.ClientCount() == 1 }, "consumer subscribed")
		sent := time.Now()
		if err := p.DeferredPublish(topicName, delay, []byte("defer-me")); err != nil {
			t.Fatalf("DPUB: %v", err)
		}
		clEventually(t, time.Second, func() bool { return ch.DeferredCount() == 1 }, "deferred_count 1 after DPUB (have %d)", ch.DeferredCount())
		d := clRecv(t, deliveries, delay+5*time.Second, "deferred delivery")
		waited := d.at.Sub(sent)
		t.Logf("DPUB %v delivered after %v", delay, waited)
		if waited < delay {
			t.Errorf("DPUB %v delivered after only %v", delay, waited)
		}
		if waited > delay+clLateSlack {
			t.Errorf("DPUB %v delivered only after %v (Q-14)", delay, waited)
		}
		if d.msg.Attempts != 1 || string(d.msg.Body) != "defer-me" {
			t.Errorf("got attempts %d body %q, want 1 %q", d.msg.Attempts, d.msg.Body, "defer-me")
		}
		clExpectNone(t, deliveries, 300*time.Millisecond, "after FIN")
	})
}

func clRecv(t testing.TB, c <-chan clDelivery, timeout time.Duration, what string) clDelivery {
	t.Helper()
	select {
	case d := <-c:
		return d
	case <-time.After(timeout):
		t.Fatalf("no %s within %v", what, timeout)
	}
	panic("unreachable")
}

func clExpectNone(t testing.TB, c <-chan clDelivery, d time.Duration, what string) {
	t.Helper()
	select {
	case got := <-c:
		t.Errorf("unexpected delivery %s: id %s attempts %d body %q", what, got.msg.ID, got.msg.Attempts, got.msg.Body)
	case <-time.After(d):
	}
}

// ---------------------------------------------------------------------------
// 3. Delivery through the disk queue
//
// D-QUEUE-01, D-QUEUE-02, D-CLI-22, D-CLI-23, D-DISK-01, D-DISK-04.

func TestGoNSQThroughDisk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		memSize int64
	}{
		{"mem-queue-size=0", 0},
		{"mem-queue-size=10", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := clOpts(t, "")
			opts.MemQueueSize = tc.memSize
			opts.MaxBytesPerFile = 32 * 1024
			node := clStart(t, opts)
			addr := node.addr()
			const topicName, n = "gonsq_disk", 5000

			topic := node.n.GetTopic(topicName)
			ch := topic.GetChannel("c")
			p := clProducer(t, addr)
			bodies := clBodies("disk", n)
			clMultiPublish(t, p, topicName, bodies[:n/2], 250)
			clPublishAsync(t, p, topicName, bodies[n/2:])

			// no consumer yet: everything ends up in the channel, beyond the
			// memory queue on disk
			clEventually(t, 10*time.Second, func() bool { return ch.Depth() == n }, "channel depth %d (have %d)", n, ch.Depth())
			be := ch.BackendDepth()
			t.Logf("channel depth %d backend_depth %d", ch.Depth(), be)
			if be < n-tc.memSize {
				t.Errorf("channel backend_depth = %d, want >= %d (memory queue holds at most %d)", be, n-tc.memSize, tc.memSize)
			}
			if be <= 0 {
				t.Errorf("channel backend_depth = %d, want > 0", be)
			}
			if got := topic.Depth(); got != 0 {
				t.Errorf("topic depth = %d after fan-out, want 0", got)
			}
			segs, _ := filepath.Glob(filepath.Join(opts.DataPath, topicName+":c.diskqueue.*.dat"))
			var data []string
			for _, s := range segs {
				if !strings.HasSuffix(s, ".meta.dat") {
					data = append(data, filepath.Base(s))
				}
			}
			if len(data) < 2 {
				entries, _ := os.ReadDir(opts.DataPath)
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("want several %s:c.diskqueue.NNNNNN.dat segments with max-bytes-per-file 32KiB (D-DISK-01/04), data path has %v", topicName, names)
			}

			seen := newCLSet()
			clConsumer(t, addr, topicName, "c", nil, nsq.HandlerFunc(func(m *nsq.Message) error {
				seen.add(string(m.Body))
				return nil
			}))
			clWaitUnique(t, seen, n, 30*time.Second, "disk channel")
			time.Sleep(200 * time.Millisecond)
			clCheckExactlyOnce(t, "through disk", seen.snapshot(), bodies)
			clEventually(t, 5*time.Second, func() bool { return ch.Depth() == 0 && ch.BackendDepth() == 0 && ch.InFlightCount() == 0 },
				"channel drained (depth %d backend %d in flight %d)", ch.Depth(), ch.BackendDepth(), ch.InFlightCount())
		})
	}
}

// ---------------------------------------------------------------------------
// More REQ / TOUCH rules: REQ 0 requeues at once (D-REQ-01); TOUCH cannot
// push a deadline past first-send + --max-msg-timeout (D-INFL-03).

func TestGoNSQRequeueZeroAndTouchCap(t *testing.T) {
	opts := clOpts(t, "")
	opts.MaxMsgTimeout = 2 * time.Second
	node := clStart(t, opts)
	addr := node.addr()
	p := clProducer(t, addr)

	t.Run("REQ_0", func(t *testing.T) {
		t.Parallel()
		const topicName = "gonsq_req0"
		ch := node.n.GetTopic(topicName).GetChannel("c")
		deliveries := make(chan clDelivery, 10)
		clConsumer(t, addr, topicName, "c", clTimingConfig(), nsq.HandlerFunc(func(m *nsq.Message) error {
			deliveries <- clDelivery{m, time.Now()}
			if m.Attempts == 1 {
				m.DisableAutoResponse()
				m.RequeueWithoutBackoff(0)
			}
			return nil
		}))
		if err := p.Publish(topicName, []byte("req0")); err != nil {
			t.Fatalf("PUB: %v", err)
		}
		first := clRecv(t, deliveries, 5*time.Second, "first delivery")
		second := clRecv(t, deliveries, 5*time.Second, "redelivery after REQ 0")
		waited := second.at.Sub(first.at)
		t.Logf("REQ 0: redelivered after %v", waited)
		if waited > time.Second {
			t.Errorf("REQ 0: redelivered only after %v, want immediately", waited)
		}
		if second.msg.Attempts != 2 || second.msg.ID != first.msg.ID {
			t.Errorf("redelivery id %s attempts %d, want %s 2", second.msg.ID, second.msg.Attempts, first.msg.ID)
		}
		if got := ch.RequeueCount(); got != 1 {
			t.Errorf("channel requeue_count = %d, want 1", got)
		}
		if got := ch.DeferredCount(); got != 0 {
			t.Errorf("channel deferred_count = %d, want 0 (REQ 0 is not deferred)", got)
		}
		clExpectNone(t, deliveries, 300*time.Millisecond, "after FIN")
	})

	t.Run("TOUCH_cap", func(t *testing.T) {
		t.Parallel()
		const topicName, timeout, maxTimeout = "gonsq_touchcap", time.Second, 2 * time.Second
		ch := node.n.GetTopic(topicName).GetChannel("c")
		cfg := clTimingConfig()
		cfg.MsgTimeout = timeout
		deliveries := make(chan clDelivery, 10)
		stopTouch := make(chan struct{})
		clConsumer(t, addr, topicName, "c", cfg, nsq.HandlerFunc(func(m *nsq.Message) error {
			deliveries <- clDelivery{m, time.Now()}
			if m.Attempts > 1 {
				return nil
			}
			m.DisableAutoResponse()
			go func() {
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-tick.C:
						m.Touch()
					case <-stopTouch:
						m.Finish() // stale copy: non-fatal E_FIN_FAILED
						return
					}
				}
			}()
			return nil
		}))
		defer close(stopTouch)
		if err := p.Publish(topicName, []byte("touch-cap")); err != nil {
			t.Fatalf("PUB: %v", err)
		}
		first := clRecv(t, deliveries, 5*time.Second, "first delivery")
		second := clRecv(t, deliveries, maxTimeout+5*time.Second, "redelivery at max-msg-timeout despite TOUCH")
		waited := second.at.Sub(first.at)
		t.Logf("touched every 200ms: redelivered after %v (msg_timeout %v, max-msg-timeout %v)", waited, timeout, maxTimeout)
		if waited < maxTimeout-100*time.Millisecond {
			t.Errorf("redelivered after %v, before max-msg-timeout %v", waited, maxTimeout)
		}
		if waited > maxTimeout+clLateSlack {
			t.Errorf("redelivered after %v: TOUCH must not extend past first send + max-msg-timeout %v", waited, maxTimeout)
		}
		if second.msg.Attempts != 2 {
			t.Errorf("redelivery attempts %d, want 2", second.msg.Attempts)
		}
		if got := ch.TimeoutCount(); got != 1 {
			t.Errorf("channel timeout_count = %d, want 1", got)
		}
	})
}

// ---------------------------------------------------------------------------
// Ephemeral topic and channel: memory only, overflow dropped but counted,
// channel deleted with its last client, topic deleted with its last channel.
// D-EPH-01, D-EPH-02, D-TOPIC-02.

func TestGoNSQEphemeral(t *testing.T) {
	opts := clOpts(t, "")
	opts.MemQueueSize = 10
	node := clStart(t, opts)
	addr := node.addr()
	const topicName, chanName = "gonsq_eph#ephemeral", "c#ephemeral"

	topic := node.n.GetTopic(topicName)
	p := clProducer(t, addr)
	bodies := clBodies("eph", 25)
	clMultiPublish(t, p, topicName, bodies, 25)
	if got := topic.MessageCount(); got != 25 {
		t.Errorf("ephemeral topic message_count = %d, want 25 (dropped messages are counted)", got)
	}
	if got := topic.Depth(); got != 10 {
		t.Errorf("ephemeral topic depth = %d, want 10 (= mem-queue-size; overflow dropped)", got)
	}
	if got := topic.BackendDepth(); got != 0 {
		t.Errorf("ephemeral topic backend_depth = %d, want 0", got)
	}
	entries, _ := os.ReadDir(opts.DataPath)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "gonsq_eph") {
			t.Errorf("ephemeral topic has a file in the data path: %s", e.Name())
		}
	}

	seen := newCLSet()
	c := clConsumer(t, addr, topicName, chanName, nil, nsq.HandlerFunc(func(m *nsq.Message) error {
		seen.add(string(m.Body))
		return nil
	}))
	clWaitUnique(t, seen, 10, 5*time.Second, "ephemeral channel")
	time.Sleep(300 * time.Millisecond)
	clCheckExactlyOnce(t, "ephemeral channel (first mem-queue-size messages)", seen.snapshot(), bodies[:10])

	if _, err := topic.GetExistingChannel(chanName); err != nil {
		t.Fatalf("ephemeral channel missing while its consumer is connected: %v", err)
	}
	c.Stop()
	select {
	case <-c.StopChan:
	case <-time.After(10 * time.Second):
		t.Fatalf("consumer did not stop")
	}
	clEventually(t, 5*time.Second, func() bool {
		_, err := topic.GetExistingChannel(chanName)
		return err != nil
	}, "ephemeral channel deleted after its last client left (D-EPH-02)")
	clEventually(t, 5*time.Second, func() bool {
		_, err := node.n.GetExistingTopic(topicName)
		return err != nil
	}, "ephemeral topic deleted after its last channel (D-EPH-01)")
}

// Q-10 / D-QUEUE-03: a negative --mem-queue-size is rejected at start-up.
func TestGoNSQNegativeMemQueueSizeRejected(t *testing.T) {
	opts := clOpts(t, "")
	opts.MemQueueSize = -1
	n, err := nsqd.New(opts)
	if err == nil {
		n.Exit()
		t.Fatalf("nsqd.New accepted MemQueueSize -1 (Q-10: must be rejected with a clear error)")
	}
	t.Logf("New(MemQueueSize=-1): %v", err)
	if !strings.Contains(err.Error(), "mem-queue-size") && !strings.Contains(err.Error(), "MemQueueSize") {
		t.Errorf("error %q does not name the option", err)
	}
}
