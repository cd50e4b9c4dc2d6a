package nsqlookupd

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// go-nsq's Consumer reads our /lookup (it relies on the
// X-NSQ-Content-Type header to parse the V1 body) and dials the producer's
// broadcast_address:tcp_port.
func TestGoNSQConsumerLookup(t *testing.T) {
	l, _ := startLookupd(t, nil)

	// A stand-in nsqd: records the dial, then hangs up.
	fake, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dialed := make(chan struct{}, 1)
	go func() {
		for {
			c, err := fake.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case dialed <- struct{}{}:
			default:
			}
		}
	}()

	peer := nsqdPeer(t, l, map[string]interface{}{
		"broadcast_address": "127.0.0.1",
		"tcp_port":          fake.Addr().(*net.TCPAddr).Port,
	})
	peer.cmd("REGISTER gonsq")
	peer.expect("OK")

	cfg := nsq.NewConfig()
	cfg.LookupdPollInterval = 5 * time.Minute
	consumer, err := nsq.NewConsumer("gonsq", "ch", cfg)
	if err != nil {
		t.Fatal(err)
	}
	consumer.SetLogger(nil, nsq.LogLevelError)
	consumer.AddHandler(nsq.HandlerFunc(func(*nsq.Message) error { return nil }))
	if err := consumer.ConnectToNSQLookupd("127.0.0.1:" + strconv.Itoa(l.RealHTTPAddr().Port)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dialed:
	case <-time.After(waitLimit):
		t.Fatal("go-nsq never dialed the producer found through /lookup")
	}
	consumer.Stop()
	select {
	case <-consumer.StopChan:
	case <-time.After(waitLimit):
		t.Fatal("consumer did not stop")
	}
}
