package nsqd_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ournsq/nsq/nsqd"
)

// --max-connections (our extension): connections over the cap get one
// E_TOO_MANY_CONNECTIONS error frame and are closed; a freed slot is
// usable again.
func TestMaxConnections(t *testing.T) {
	_, addr := startNSQD(t, func(o *nsqd.Options) { o.MaxConnections = 2 })
	a := dialV2(t, addr)
	b := dialV2(t, addr)
	a.write(line("NOP"))
	b.write(line("NOP"))
	eventually(t, 5*time.Second, "both connections accepted", func() bool {
		a.expectAlive()
		b.expectAlive()
		return true
	})

	over := dialRaw(t, addr)
	over.expectError("E_TOO_MANY_CONNECTIONS max connections (2) reached")
	over.expectClosed()

	a.Close()
	// until the server has seen the close, a new connection is still
	// refused (and our write may hit a reset): retry on any error
	eventually(t, 5*time.Second, "a freed slot accepts a publisher", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write(append([]byte("  V2"), pubCmd("capped", []byte("x"))...)); err != nil {
			return false
		}
		var hdr [8]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return false
		}
		data := make([]byte, binary.BigEndian.Uint32(hdr[0:4])-4)
		if _, err := io.ReadFull(conn, data); err != nil {
			return false
		}
		return binary.BigEndian.Uint32(hdr[4:8]) == 0 && string(data) == "OK"
	})
}

// A consumer that stops reading cannot make nsqd buffer without limit: its
// writes hit the write deadline (the heartbeat interval), nsqd drops the
// connection, and the messages it held come back after their msg timeout
// to a consumer that reads.
func TestSlowConsumerIsDropped(t *testing.T) {
	n, addr := startNSQD(t, nil)
	stuck := consumer(t, addr, "slow", "ch", `{"heartbeat_interval":1000,"msg_timeout":1000}`, 2500)

	body := bytes.Repeat([]byte("z"), 256*1024)
	const total = 100 // 25 MiB: far more than loopback socket buffers hold
	p := dialV2(t, addr)
	for i := 0; i < total; i++ {
		p.write(pubCmd("slow", append([]byte(fmt.Sprintf("%03d", i)), body...)))
		p.expectResponse("OK")
	}

	// keep the stuck consumer's reads alive so only the write side can end it
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(300 * time.Millisecond):
				stuck.Conn.Write([]byte("NOP\n"))
			}
		}
	}()
	tp, _ := n.GetExistingTopic("slow")
	ch, _ := tp.GetExistingChannel("ch")
	eventually(t, 10*time.Second, "stuck consumer dropped", func() bool { return ch.ClientCount() == 0 })

	good := consumer(t, addr, "slow", "ch", "", 2500)
	seen := map[string]bool{}
	for len(seen) < total {
		m := good.readMsgWithin(10 * time.Second)
		seen[m.body[:3]] = true
		good.write(line("FIN " + m.id))
	}
	if ch.TimeoutCount() == 0 {
		t.Fatal("no message was held by the dropped consumer")
	}
}
