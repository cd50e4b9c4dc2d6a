package nsqd_test

// Raw TCP protocol V2 client used by protocol_v2_wire_test.go. It speaks
// bytes only (no go-nsq), so the tests see exactly what a client sees:
// frames are [uint32 BE size][int32 BE type][data] (D-TCP-03).

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/nsqd"
)

const (
	frameTypeResponse = 0
	frameTypeError    = 1
	frameTypeMessage  = 2

	// ioTimeout bounds every single wait on a socket.
	ioTimeout = 5 * time.Second
	// quiet is how long we listen to assert that nothing arrives.
	quiet = 300 * time.Millisecond
)

// testLogger forwards nsqd's log lines to t.Log until the test is over
// (logging after that would panic).
type testLogger struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *testLogger) Output(_ int, s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(s)
	}
	return nil
}

// startNSQD starts an nsqd on 127.0.0.1:0 with its data in a fresh temp dir;
// mod may adjust the options first. Exit runs at cleanup.
func startNSQD(t testing.TB, mod func(*nsqd.Options)) (*nsqd.NSQD, string) {
	t.Helper()
	opts := nsqd.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.HTTPSAddress = "127.0.0.1:0"
	opts.DataPath = t.TempDir()
	logger := &testLogger{t: t}
	t.Cleanup(func() { // registered first, so it runs after Exit
		logger.mu.Lock()
		logger.done = true
		logger.mu.Unlock()
	})
	opts.Logger = logger
	opts.LogLevel = lg.INFO
	if os.Getenv("NSQD_WIRE_DEBUG") != "" {
		opts.LogLevel = lg.DEBUG
	}
	if mod != nil {
		mod(opts)
	}
	n, err := nsqd.New(opts)
	if err != nil {
		t.Fatalf("nsqd.New: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Main()
	}()
	t.Cleanup(func() {
		n.Exit()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("nsqd Main did not return within 10s of Exit")
		}
	})
	return n, n.RealTCPAddr().String()
}

// wireConn is one raw client connection.
type wireConn struct {
	t testing.TB
	net.Conn
	r *bufio.Reader
}

// dialRaw connects without sending the magic.
func dialRaw(t testing.TB, addr string) *wireConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &wireConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

// dialV2 connects and sends the "  V2" magic (D-TCP-01).
func dialV2(t testing.TB, addr string) *wireConn {
	t.Helper()
	c := dialRaw(t, addr)
	c.write([]byte("  V2"))
	return c
}

func (c *wireConn) write(b []byte) {
	c.t.Helper()
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Conn.Write(b); err != nil {
		c.t.Fatalf("write %q: %v", b, err)
	}
}

// closeWrite half-closes the connection so the server sees EOF mid-command.
func (c *wireConn) closeWrite() {
	c.t.Helper()
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		c.t.Fatalf("CloseWrite: %v", err)
	}
}

// frame is one server→client unit.
type frame struct {
	typ  int32
	data []byte
	raw  []byte // the whole frame including the size prefix
}

func (f frame) String() string {
	return fmt.Sprintf("frame{type %d, %q}", f.typ, f.data)
}

// readFrameWithin reads one frame, waiting at most d.
func (c *wireConn) readFrameWithin(d time.Duration) (frame, error) {
	c.SetReadDeadline(time.Now().Add(d))
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return frame{}, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size < 4 || size > 16<<20 {
		return frame{}, fmt.Errorf("implausible frame size %d (header % x)", size, hdr)
	}
	raw := make([]byte, 4+size)
	copy(raw, hdr[:])
	if _, err := io.ReadFull(c.r, raw[4:]); err != nil {
		return frame{}, fmt.Errorf("short frame body (size %d): %w", size, err)
	}
	return frame{
		typ:  int32(binary.BigEndian.Uint32(raw[4:8])),
		data: raw[8:],
		raw:  raw,
	}, nil
}

func (c *wireConn) readFrame() frame {
	c.t.Helper()
	f, err := c.readFrameWithin(ioTimeout)
	if err != nil {
		c.t.Fatalf("reading frame: %v", err)
	}
	return f
}

// wantFrame is the exact byte image of a frame (D-TCP-03).
func wantFrame(typ int32, data string) []byte {
	b := make([]byte, 8+len(data))
	binary.BigEndian.PutUint32(b, uint32(4+len(data)))
	binary.BigEndian.PutUint32(b[4:], uint32(typ))
	copy(b[8:], data)
	return b
}

func (c *wireConn) expectResponse(want string) {
	c.t.Helper()
	f := c.readFrame()
	if string(f.raw) != string(wantFrame(frameTypeResponse, want)) {
		c.t.Fatalf("want response %q (% x), got %v (% x)", want, wantFrame(frameTypeResponse, want), f, f.raw)
	}
}

// expectError checks the exact bytes of an error frame.
func (c *wireConn) expectError(want string) {
	c.t.Helper()
	f := c.readFrame()
	if string(f.raw) != string(wantFrame(frameTypeError, want)) {
		c.t.Fatalf("want error frame %q, got %v (raw % x)", want, f, f.raw)
	}
}

// isClosedErr reports whether err means the peer closed the connection.
func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expectClosedWithin asserts the server closes the connection within d and
// sends nothing more.
func (c *wireConn) expectClosedWithin(d time.Duration) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c.r)
	if len(b) > 0 {
		c.t.Fatalf("want connection closed, got %d more bytes: %q", len(b), b)
	}
	if err != nil && !isClosedErr(err) {
		c.t.Fatalf("want connection closed within %v, got %v", d, err)
	}
}

func (c *wireConn) expectClosed() {
	c.t.Helper()
	c.expectClosedWithin(ioTimeout)
}

// expectSilence asserts that no byte arrives for d and the connection is
// still open.
func (c *wireConn) expectSilence(d time.Duration) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	b, err := c.r.Peek(1)
	if err == nil {
		f, ferr := c.readFrameWithin(ioTimeout)
		c.t.Fatalf("want silence for %v, got %v (err %v, first byte % x)", d, f, ferr, b)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("want silence for %v, got %v", d, err)
	}
}

// expectAlive checks the connection still works: NOP is silent and a PUB
// to an unrelated topic answers OK as the very next frame (D-TCP-39).
func (c *wireConn) expectAlive() {
	c.t.Helper()
	c.write(append([]byte("NOP\n"), pubCmd("probe", []byte("alive"))...))
	c.expectResponse("OK")
}

// ---- command builders -------------------------------------------------------

func be32(n int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(n)))
	return b[:]
}

// withBody is [int32 BE len][body].
func withBody(b []byte) []byte { return append(be32(len(b)), b...) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func line(s string) []byte { return []byte(s + "\n") }

func pubCmd(topic string, body []byte) []byte {
	return cat(line("PUB "+topic), withBody(body))
}

func dpubCmd(topic string, ms int, body []byte) []byte {
	return cat(line("DPUB "+topic+" "+strconv.Itoa(ms)), withBody(body))
}

func mpubBody(bodies ...[]byte) []byte {
	b := be32(len(bodies))
	for _, m := range bodies {
		b = append(b, withBody(m)...)
	}
	return b
}

func mpubCmd(topic string, bodies ...[]byte) []byte {
	return cat(line("MPUB "+topic), withBody(mpubBody(bodies...)))
}

func identifyCmd(js string) []byte {
	return cat(line("IDENTIFY"), withBody([]byte(js)))
}

// ---- higher level ------------------------------------------------------------

func (c *wireConn) identify(js string) frame {
	c.t.Helper()
	c.write(identifyCmd(js))
	f := c.readFrame()
	if f.typ != frameTypeResponse {
		c.t.Fatalf("IDENTIFY %s: got %v", js, f)
	}
	return f
}

func (c *wireConn) sub(topic, channel string) {
	c.t.Helper()
	c.write(line("SUB " + topic + " " + channel))
	c.expectResponse("OK")
}

func (c *wireConn) rdy(n int) { c.t.Helper(); c.write(line("RDY " + strconv.Itoa(n))) }

// consumer dials, optionally IDENTIFYs, SUBs and sends RDY rdy (if > 0).
func consumer(t testing.TB, addr, topic, channel, identifyJSON string, rdy int) *wireConn {
	t.Helper()
	c := dialV2(t, addr)
	if identifyJSON != "" {
		c.write(identifyCmd(identifyJSON))
		c.expectResponse("OK")
	}
	c.sub(topic, channel)
	if rdy > 0 {
		c.rdy(rdy)
	}
	return c
}

// publish sends every body with PUB on a fresh connection.
func publish(t testing.TB, addr, topic string, bodies ...string) {
	t.Helper()
	p := dialV2(t, addr)
	for _, b := range bodies {
		p.write(pubCmd(topic, []byte(b)))
		p.expectResponse("OK")
	}
	p.Close()
}

// wireMsg is a decoded message frame (D-TCP-45).
type wireMsg struct {
	frame
	ts       int64
	attempts uint16
	id       string
	body     string
}

func parseMsg(t testing.TB, f frame) wireMsg {
	t.Helper()
	if f.typ != frameTypeMessage {
		t.Fatalf("want message frame, got %v", f)
	}
	if len(f.data) < 26 {
		t.Fatalf("message frame too short: % x", f.raw)
	}
	return wireMsg{
		frame:    f,
		ts:       int64(binary.BigEndian.Uint64(f.data[0:8])),
		attempts: binary.BigEndian.Uint16(f.data[8:10]),
		id:       string(f.data[10:26]),
		body:     string(f.data[26:]),
	}
}

func (c *wireConn) readMsg() wireMsg {
	c.t.Helper()
	return parseMsg(c.t, c.readFrame())
}

// readMsgWithin reads one message frame, failing after d.
func (c *wireConn) readMsgWithin(d time.Duration) wireMsg {
	c.t.Helper()
	f, err := c.readFrameWithin(d)
	if err != nil {
		c.t.Fatalf("waiting %v for a message: %v", d, err)
	}
	return parseMsg(c.t, f)
}

// eventually polls cond every 10ms for at most d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
