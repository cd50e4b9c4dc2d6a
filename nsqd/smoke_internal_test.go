package nsqd

import (
	"fmt"
	"sync"
	"testing"
	"time"

	gonsq "github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/internal/lg"
)

type testLogger struct{ t testing.TB }

func (l testLogger) Output(_ int, s string) error { l.t.Log(s); return nil }

func startTestNSQD(t testing.TB, mutate func(*Options)) *NSQD {
	t.Helper()
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.DataPath = t.TempDir()
	opts.Logger = testLogger{t}
	opts.LogLevel = lg.WARN
	if mutate != nil {
		mutate(opts)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	go n.Main()
	t.Cleanup(n.Exit)
	return n
}

func TestSmokePubSub(t *testing.T) {
	n := startTestNSQD(t, nil)
	addr := n.RealTCPAddr().String()
	cfg := gonsq.NewConfig()
	p, err := gonsq.NewProducer(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.SetLogger(nil, gonsq.LogLevelError)
	defer p.Stop()
	const total = 1000
	for i := 0; i < total; i++ {
		if err := p.Publish("smoke", []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	c, _ := gonsq.NewConsumer("smoke", "ch", cfg)
	c.SetLogger(nil, gonsq.LogLevelError)
	c.AddHandler(gonsq.HandlerFunc(func(m *gonsq.Message) error {
		mu.Lock()
		seen[string(m.Body)]++
		if len(seen) == total {
			close(done)
		}
		mu.Unlock()
		return nil
	}))
	if err := c.ConnectToNSQD(addr); err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("got %d of %d", len(seen), total)
	}
}
