package nsqd

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// Commands that meet a topic or channel on its way out (D-TCP-32, D-ERR-33,
// D-ERR-47, D-ERR-51, D-ERR-54). The window between a Close/Delete setting
// the exit flag and the topic leaving nsqd's map is too short to hit from
// outside, so these tests hold it open by setting the flag themselves (and
// clear it again, so that the test's own shutdown closes everything).

// exConn is a raw V2 connection.
type exConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func exDial(t *testing.T, n *NSQD) *exConn {
	t.Helper()
	c, err := net.Dial("tcp", n.RealTCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Write([]byte("  V2"))
	return &exConn{t: t, c: c, rd: bufio.NewReader(c)}
}

func (e *exConn) send(parts ...[]byte) {
	e.t.Helper()
	for _, p := range parts {
		if _, err := e.c.Write(p); err != nil {
			e.t.Fatal(err)
		}
	}
}

// frame reads one frame within 5 s: its type and data.
func (e *exConn) frame() (int32, string) {
	e.t.Helper()
	e.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [8]byte
	if _, err := io.ReadFull(e.rd, hdr[:]); err != nil {
		e.t.Fatalf("reading a frame: %v", err)
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(e.rd, data); err != nil {
		e.t.Fatalf("reading a frame: %v", err)
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), string(data)
}

// expectFatal reads the error frame want, then the close.
func (e *exConn) expectFatal(want string) {
	e.t.Helper()
	if typ, data := e.frame(); typ != frameTypeError || data != want {
		e.t.Fatalf("got frame %d %q, want error %q", typ, data, want)
	}
	e.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := e.rd.Read(make([]byte, 1)); err == nil {
		e.t.Fatalf("connection still open after %q (read %d bytes)", want, n)
	}
}

func exBody(b string) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(len(b)))
}

func TestPublishToClosingTopicFails(t *testing.T) {
	n := startTestNSQD(t, nil)
	topic := n.GetTopic("closing")
	topic.exitFlag.Store(true)
	defer topic.exitFlag.Store(false)

	mpub := append(binary.BigEndian.AppendUint32(nil, 4+4+1), 0, 0, 0, 1)
	mpub = append(append(mpub, exBody("m")...), 'm')
	for _, c := range []struct {
		cmd  [][]byte
		want string
	}{
		{[][]byte{[]byte("PUB closing\n"), exBody("p"), []byte("p")}, "E_PUB_FAILED PUB failed exiting"},
		{[][]byte{[]byte("DPUB closing 100\n"), exBody("d"), []byte("d")}, "E_DPUB_FAILED DPUB failed exiting"},
		{[][]byte{[]byte("MPUB closing\n"), mpub}, "E_MPUB_FAILED MPUB failed exiting"},
	} {
		e := exDial(t, n)
		e.send(c.cmd...)
		e.expectFatal(c.want)
	}
	if d, m := topic.Depth(), topic.MessageCount(); d != 0 || m != 0 {
		t.Fatalf("the closing topic kept %d messages (counted %d)", d, m)
	}
}

// SUB joining an ephemeral topic that is exiting waits 100 ms and tries
// once more: still exiting is E_SUB_FAILED, gone by then is a normal SUB.
func TestSubToExitingEphemeralTopic(t *testing.T) {
	n := startTestNSQD(t, nil)
	topic := n.GetTopic("eph#ephemeral")
	topic.exitFlag.Store(true)

	e := exDial(t, n)
	start := time.Now()
	e.send([]byte("SUB eph#ephemeral ch\n"))
	e.expectFatal("E_SUB_FAILED SUB failed to deleted topic/channel")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("refused after %v, before the 100 ms retry", d)
	}

	// the exit flag clears during the pause: the retry joins
	e = exDial(t, n)
	e.send([]byte("SUB eph#ephemeral ch\n"))
	time.Sleep(30 * time.Millisecond)
	topic.exitFlag.Store(false)
	if typ, data := e.frame(); typ != frameTypeResponse || data != "OK" {
		t.Fatalf("SUB after the retry: frame %d %q, want OK", typ, data)
	}
	ch, err := topic.GetExistingChannel("ch")
	if err != nil {
		t.Fatal(err)
	}
	ch.RLock()
	clients := len(ch.clients)
	ch.RUnlock()
	if clients != 1 {
		t.Fatalf("channel has %d clients after the retried SUB, want 1", clients)
	}
}

// A channel that is closing refuses new clients: E_SUB_FAILED with the
// reason.
func TestSubToClosingChannel(t *testing.T) {
	n := startTestNSQD(t, nil)
	ch := n.GetTopic("t").GetChannel("closing")
	ch.exitFlag.Store(true)
	defer ch.exitFlag.Store(false)
	e := exDial(t, n)
	e.send([]byte("SUB t closing\n"))
	e.expectFatal("E_SUB_FAILED SUB failed exiting")
}
