package nsqd

// Tests of the per-command hot path's internals (docs/performance.md):
// parameter splitting, the DEBUG guard, lazy deadlines and the write stack.

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// hotpathNSQD is an nsqd that logs nothing, for calling handlers directly.
func hotpathNSQD(t *testing.T, level lg.LogLevel) *NSQD {
	t.Helper()
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.DataPath = t.TempDir()
	opts.Logger = lg.NilLogger{}
	opts.LogLevel = level
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	go n.Main()
	t.Cleanup(n.Exit)
	return n
}

func TestSplitParamsMatchesBytesSplit(t *testing.T) {
	c := &clientV2{}
	c.params = c.paramsArr[:0]
	for _, line := range []string{
		"", " ", "  ", "NOP", "FIN 0123456789abcdef", "SUB t ch", "RDY  1", " RDY", "RDY ",
		"a b c d e f g h i j k l", // more than paramsArr holds
		"REQ 0123456789abcdef 0",
	} {
		got := c.splitParams([]byte(line))
		want := bytes.Split([]byte(line), []byte(" "))
		if len(got) != len(want) {
			t.Fatalf("splitParams(%q) = %q, want %q", line, got, want)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) || cap(got[i]) != len(got[i]) {
				t.Fatalf("splitParams(%q)[%d] = %q (cap %d), want %q", line, i, got[i], cap(got[i]), want[i])
			}
		}
	}
	line := []byte("REQ 0123456789abcdef 1000")
	if n := testing.AllocsPerRun(100, func() { c.splitParams(line) }); n != 0 {
		t.Fatalf("splitParams allocates %v times per command", n)
	}
}

// A command costs no allocation of its own: no params slice, no boxing for
// a DEBUG line that is not written.
func TestExecLineDoesNotAllocate(t *testing.T) {
	n := hotpathNSQD(t, lg.INFO)
	c := newClientV2(1, benchConn{}, n)
	p := &protocolV2{nsqd: n}
	line := []byte("NOP")
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := p.execLine(c, line); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("NOP allocates %v times", allocs)
	}
}

// deadlineConn records write deadlines and the writes they preceded.
type deadlineConn struct {
	benchConn
	deadlines []time.Time
	writes    int
	out       bytes.Buffer
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.deadlines = append(c.deadlines, t)
	return nil
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.writes++
	return c.out.Write(p)
}

// Buffered message frames touch neither the socket nor its deadline; the
// deadline is set before bytes go out, and not for an empty flush.
func TestWriteDeadlineOnlyWhenWriting(t *testing.T) {
	n := hotpathNSQD(t, lg.INFO)
	conn := &deadlineConn{}
	c := newClientV2(1, conn, n)
	m := NewMessage(guid(1).Hex(), []byte("body"))
	for i := 0; i < 10; i++ {
		if err := c.writeMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if len(conn.deadlines) != 0 || conn.writes != 0 {
		t.Fatalf("buffered frames: %d deadlines, %d writes", len(conn.deadlines), conn.writes)
	}
	start := time.Now()
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if len(conn.deadlines) != 1 || conn.writes != 1 {
		t.Fatalf("flush: %d deadlines, %d writes", len(conn.deadlines), conn.writes)
	}
	if conn.deadlines[0].Before(start.Add(c.writeTimeout)) {
		t.Fatalf("write deadline %v is less than %v away", conn.deadlines[0], c.writeTimeout)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	if len(conn.deadlines) != 1 || conn.writes != 1 {
		t.Fatalf("empty flush: %d deadlines, %d writes", len(conn.deadlines), conn.writes)
	}
	// the frames are the wire's
	r := bufio.NewReader(&conn.out)
	for i := 0; i < 10; i++ {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, int(hdr[3])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		if hdr[7] != byte(frameTypeMessage) || !bytes.HasSuffix(body, []byte("body")) {
			t.Fatalf("frame %d: %x %q", i, hdr, body)
		}
	}
}

var _ net.Conn = (*deadlineConn)(nil)

// With output buffering off (output_buffer_size -1) every frame goes out
// at once, each in one write: a message's header and body written apart
// would wake the consumer twice, with half a frame the first time.
func TestUnbufferedFrameIsOneWrite(t *testing.T) {
	n := hotpathNSQD(t, lg.INFO)
	conn := &deadlineConn{}
	c := newClientV2(1, conn, n)
	if err := c.setOutputBuffer(-1, 0); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("b"), 200)
	for i := 1; i <= 3; i++ {
		m := NewMessage(guid(i).Hex(), body)
		if err := c.writeMessage(m); err != nil {
			t.Fatal(err)
		}
		if conn.writes != i || conn.out.Len() != i*(8+wireHeaderLength+len(body)) {
			t.Fatalf("after message %d: %d writes, %d bytes", i, conn.writes, conn.out.Len())
		}
	}
	if c.outputBufferSize != 1 {
		t.Fatalf("output_buffer_size is reported as %d, want 1 (as NSQ)", c.outputBufferSize)
	}
}

// The count of the topic published to last is added without the map
// (publishedMessage); switching topics and back still adds to each its own,
// and /stats reads them (the one entry it shows, D-HTTP-22).
func TestPublishedMessageCountsPerTopic(t *testing.T) {
	n := hotpathNSQD(t, lg.INFO)
	c := newClientV2(1, benchConn{}, n)
	for _, pub := range []struct {
		topic string
		n     uint64
	}{{"a", 1}, {"a", 1}, {"b", 200}, {"a", 1}, {"b", 1}, {"b", 1}} {
		c.publishedMessage(pub.topic, pub.n)
	}
	for topic, want := range map[string]uint64{"a": 3, "b": 202} {
		got := c.Stats(topic).PubCounts
		if len(got) != 1 || got[0].Topic != topic || got[0].Count != want {
			t.Fatalf("stats(%q).PubCounts = %+v, want [{%s %d}]", topic, got, topic, want)
		}
	}
	if !c.isProducer() {
		t.Fatal("a client that published is not a producer")
	}
}

// A PUB's body that came with its command line is read without moving the
// read deadline; one that must still come from the socket moves it.
func TestBodyBuffered(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"\x00\x00\x00", false},
		{"\x00\x00\x00\x03ab", false},
		{"\x00\x00\x00\x03abc", true},
		{"\x00\x00\x00\x03abcPUB", true},
		{"\x00\x00\x00\x00", true},  // size 0: refused without a read
		{"\xff\xff\xff\xff", false}, // negative: refused after arming
	} {
		r := bufio.NewReader(strings.NewReader(tc.in))
		r.Peek(len(tc.in)) // buffer everything there is
		if got := bodyBuffered(r); got != tc.want {
			t.Errorf("bodyBuffered(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
