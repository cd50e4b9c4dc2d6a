package nsqd_test

// Direct delivery (direct.go): a publisher's goroutine delivering to an
// idle consumer with output buffering off. Nothing a client sees may
// change: the same frames, RDY respected, order kept, and a consumer that
// stops reading never holds up a publisher.

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/nsqd"
)

const unbuffered = `{"output_buffer_size":-1}`

// idleConsumer subscribes an unbuffered consumer to topic/ch with RDY rdy
// and waits until its RDY is in force (a first message arrived, FINed).
func idleConsumer(t *testing.T, addr, topic string, rdy int) *wireConn {
	t.Helper()
	c := consumer(t, addr, topic, "ch", unbuffered, rdy)
	publish(t, addr, topic, "warm-up")
	c.write(line("FIN " + c.readMsg().id))
	return c
}

// requireDirect fails a test whose messages all took the pump's path: it
// would prove nothing about direct delivery.
func requireDirect(t *testing.T, n *nsqd.NSQD, topic string) {
	t.Helper()
	if delivered, _ := nsqd.DirectDeliveries(n, topic, "ch"); delivered == 0 {
		t.Fatal("no message was delivered directly: the test proves nothing")
	}
}

// An idle unbuffered consumer gets each message straight from the
// publisher, in flight as the pump would have put it (FIN works, one
// attempt). Buffered consumers, and nsqd with direct delivery off, take
// the pump's path.
func TestDirectDeliveryReachesIdleConsumer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		identify string
		mod      func(*nsqd.Options)
		direct   bool
	}{
		{"unbuffered", unbuffered, nil, true},
		{"buffered", "", nil, false},
		{"off", unbuffered, nsqd.NoDirectDelivery, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, addr := startNSQD(t, tc.mod)
			c := consumer(t, addr, "direct", "ch", tc.identify, 10)
			p := dialV2(t, addr)
			for i := 0; i < 5; i++ {
				body := "msg-" + strconv.Itoa(i)
				p.write(pubCmd("direct", []byte(body)))
				m := c.readMsg()
				if m.body != body || m.attempts != 1 {
					t.Fatalf("got %q (attempts %d), want %q (1)", m.body, m.attempts, body)
				}
				p.expectResponse("OK")
				c.write(line("FIN " + m.id))
			}
			// a FIN that failed would answer E_FIN_FAILED before this
			p.write(pubCmd("direct", []byte("last")))
			p.expectResponse("OK")
			if m := c.readMsg(); m.body != "last" {
				t.Fatalf("got %q, want last", m.body)
			}
			delivered, _ := nsqd.DirectDeliveries(n, "direct", "ch")
			if tc.direct && delivered < 5 {
				t.Fatalf("%d of 6 messages delivered directly, want at least 5 (the first may race RDY)", delivered)
			}
			if !tc.direct && delivered != 0 {
				t.Fatalf("%d messages delivered directly, want none", delivered)
			}
		})
	}
}

// Publishers racing each other and the pump never send a consumer more
// than its RDY allows.
func TestDirectDeliveryKeepsRDY(t *testing.T) {
	n, addr := startNSQD(t, nil)
	const rdy = 3
	c := consumer(t, addr, "rdy", "ch", unbuffered, rdy)
	publish(t, addr, "rdy", "warm-up") // RDY applied once this arrives
	first := c.readMsg()

	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := dialV2(t, addr)
			for i := 0; i < 25; i++ {
				p.write(pubCmd("rdy", []byte("x")))
			}
			for i := 0; i < 25; i++ {
				p.expectResponse("OK")
			}
		}()
	}
	wg.Wait()
	for i := 1; i < rdy; i++ {
		c.readMsg()
	}
	c.expectSilence(300 * time.Millisecond)
	for i := 0; i < 5; i++ {
		// each FIN makes room for exactly one more
		c.write(line("FIN " + first.id))
		first = c.readMsg()
		c.expectSilence(100 * time.Millisecond)
	}
	requireDirect(t, n, "rdy")
}

// One publisher's pipelined messages reach one consumer in the order
// published, whichever path each took (the pump is busy part of the time).
func TestDirectDeliveryKeepsOrder(t *testing.T) {
	n, addr := startNSQD(t, nil)
	c := idleConsumer(t, addr, "order", 2500)

	const count = 3000
	var cmds []byte
	for i := 0; i < count; i++ {
		cmds = append(cmds, pubCmd("order", []byte(strconv.Itoa(i)))...)
	}
	p := dialV2(t, addr)
	go func() {
		p.Write(cmds) // pipelined: read below
	}()
	for i := 0; i < count; i++ {
		m := c.readMsg()
		if m.body != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.body)
		}
		c.write(line("FIN " + m.id))
	}
	for i := 0; i < count; i++ {
		p.expectResponse("OK")
	}
	requireDirect(t, n, "order")
}

// A consumer that stops reading never holds up a publisher: what its
// socket does not take waits in its output buffer for the pump, and the
// frames it then reads are whole and in order.
func TestDirectDeliveryNeverBlocksPublisher(t *testing.T) {
	n, addr := startNSQD(t, nil)
	c := idleConsumer(t, addr, "slow", 2500)

	const count = 2000 // 8 MB: far more than the sockets hold
	body := func(i int) string { return fmt.Sprintf("%06d%03990d", i, 0) }
	p := dialV2(t, addr)
	start := time.Now()
	for i := 0; i < count; i++ {
		p.write(pubCmd("slow", []byte(body(i))))
		p.expectResponse("OK") // within ioTimeout each
	}
	t.Logf("%d PUBs of 4 KB to a consumer not reading: %v", count, time.Since(start))
	delivered, leftOver := nsqd.DirectDeliveries(n, "slow", "ch")
	if delivered == 0 || leftOver == 0 {
		t.Fatalf("%d delivered directly, %d left to the pump: want both > 0", delivered, leftOver)
	}
	for i := 0; i < count; i++ {
		m := c.readMsg()
		if m.body != body(i) || m.attempts != 1 {
			t.Fatalf("message %d: %.12q… (%d bytes, attempts %d)", i, m.body, len(m.body), m.attempts)
		}
		c.write(line("FIN " + m.id))
	}
	c.expectSilence(100 * time.Millisecond)
}

// go-nsq consumers with output buffering off, several of them on one
// channel, publishers racing: every message arrives exactly once.
func TestDirectDeliveryGoNSQ(t *testing.T) {
	n, addr := startNSQD(t, nil)
	const consumers, publishers, each = 3, 4, 300
	var mu sync.Mutex
	seen := map[string]int{}
	all := make(chan struct{})
	for i := 0; i < consumers; i++ {
		cfg := nsq.NewConfig()
		cfg.OutputBufferSize = -1
		cfg.MaxInFlight = 50
		cons, err := nsq.NewConsumer("gonsq", "ch", cfg)
		if err != nil {
			t.Fatal(err)
		}
		cons.SetLogger(nil, nsq.LogLevelError)
		cons.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
			mu.Lock()
			defer mu.Unlock()
			seen[string(m.Body)]++
			if len(seen) == publishers*each {
				select {
				case <-all:
				default:
					close(all)
				}
			}
			return nil
		}))
		if err := cons.ConnectToNSQD(addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cons.Stop)
	}
	var wg sync.WaitGroup
	for w := 0; w < publishers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prod, err := nsq.NewProducer(addr, nsq.NewConfig())
			if err != nil {
				t.Error(err)
				return
			}
			prod.SetLogger(nil, nsq.LogLevelError)
			defer prod.Stop()
			for i := 0; i < each; i++ {
				if err := prod.Publish("gonsq", []byte(fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d messages arrived", len(seen), publishers*each)
	}
	time.Sleep(100 * time.Millisecond) // a duplicate would show by now
	mu.Lock()
	defer mu.Unlock()
	for body, k := range seen {
		if k != 1 {
			t.Fatalf("%s arrived %d times", body, k)
		}
	}
	requireDirect(t, n, "gonsq")
}
