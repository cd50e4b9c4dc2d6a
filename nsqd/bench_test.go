package nsqd

// Benchmarks of nsqd's hot paths (docs/performance.md). Run with
//
//	go test ./nsqd -run '^$' -bench . -benchmem
//
// Every benchmark reports allocations; where an op is one message the
// allocs/op figure is allocations per message. BenchmarkGUID (the bare ID
// factory) lives in message_test.go.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

var benchBody = bytes.Repeat([]byte{'a'}, 200)

// benchStartNSQD starts an nsqd on loopback that logs nothing.
func benchStartNSQD(b *testing.B, mutate func(*Options)) *NSQD {
	b.Helper()
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.DataPath = b.TempDir()
	opts.Logger = lg.NilLogger{}
	opts.LogLevel = lg.FATAL
	if mutate != nil {
		mutate(opts)
	}
	n, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	go n.Main()
	b.Cleanup(n.Exit)
	return n
}

// benchConn is a net.Conn that discards writes and reads from r.
type benchConn struct{ r io.Reader }

func (c benchConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return 0, io.EOF
	}
	return c.r.Read(p)
}
func (benchConn) Write(p []byte) (int, error)      { return len(p), nil }
func (benchConn) Close() error                     { return nil }
func (benchConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4150} }
func (benchConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func (benchConn) SetDeadline(time.Time) error      { return nil }
func (benchConn) SetReadDeadline(time.Time) error  { return nil }
func (benchConn) SetWriteDeadline(time.Time) error { return nil }

// repeatReader returns the same bytes over and over.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// benchDrain receives from a channel's memory and disk queues until stop
// is closed, counting messages (what overflowed to disk counts too).
func benchDrain(c *Channel, stop chan struct{}, count *atomic.Int64, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case _, ok := <-c.memq.ch():
			if ok {
				count.Add(1)
			}
		case b := <-c.backend.ReadChan():
			claimRecord(c.backend, b, false).release() // as a consumer does
			count.Add(1)
		case <-stop:
			return
		}
	}
}

// benchWaitCount waits until count reaches want (fails after 30s without
// progress, rather than hang the run).
func benchWaitCount(b *testing.B, count *atomic.Int64, want int64) {
	last, since := count.Load(), time.Now()
	for {
		n := count.Load()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 30*time.Second {
			b.Fatalf("stuck at %d of %d deliveries", n, want)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// A message frame into a client's output buffer (the delivery path's
// encode; the buffer flushes to a discarding conn).
func BenchmarkMessageWriteFrame(b *testing.B) {
	n := benchStartNSQD(b, nil)
	c := newClientV2(1, benchConn{}, n)
	m := NewMessage(guid(1).Hex(), benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(8 + wireHeaderLength + len(benchBody)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.writeMessage(m); err != nil {
			b.Fatal(err)
		}
	}
}

// The wire layout appended to a reused buffer.
func BenchmarkMessageAppendWire(b *testing.B) {
	m := NewMessage(guid(1).Hex(), benchBody)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(wireHeaderLength + len(benchBody)))
	for i := 0; i < b.N; i++ {
		buf = m.appendWire(buf[:0])
	}
}

// The version-1 disk record (one allocation: the record handed to
// go-diskqueue).
func BenchmarkDiskEncode(b *testing.B) {
	m := NewMessage(guid(1).Hex(), benchBody)
	b.ReportAllocs()
	b.SetBytes(int64(diskHeaderLengthV1 + len(benchBody)))
	for i := 0; i < b.N; i++ {
		_ = m.encodeDisk(0)
	}
}

func BenchmarkDiskDecode(b *testing.B) {
	rec := NewMessage(guid(1).Hex(), benchBody).encodeDisk(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for i := 0; i < b.N; i++ {
		if _, err := decodeDiskMessage(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTopicWithChannels returns a started topic with n channels whose
// memory queues are drained; stop ends the drains, count counts deliveries.
func benchTopicWithChannels(b *testing.B, nsqd *NSQD, name string, n int) (*Topic, *atomic.Int64, func()) {
	t := nsqd.GetTopic(name)
	var chans []*Channel
	for i := 0; i < n; i++ {
		chans = append(chans, t.GetChannel("ch"+strconv.Itoa(i)))
	}
	t.Start()
	count := new(atomic.Int64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range chans {
		wg.Add(1)
		go benchDrain(c, stop, count, &wg)
	}
	return t, count, func() { close(stop); wg.Wait() }
}

// benchPUBCommand is `PUB t` with benchBody, as a client sends it.
func benchPUBCommand() []byte {
	cmd := binary.BigEndian.AppendUint32([]byte("PUB t\n"), uint32(len(benchBody)))
	return append(cmd, benchBody...)
}

// One PUB command read from the client's buffered reader, parsed,
// published (to a topic with one drained channel) and answered, as the
// IOLoop does it.
func BenchmarkProtocolPUB(b *testing.B) {
	nsqd := benchStartNSQD(b, nil)
	_, delivered, stop := benchTopicWithChannels(b, nsqd, "t", 1)
	defer stop()

	cmd := benchPUBCommand()
	c := newClientV2(1, benchConn{r: &repeatReader{data: cmd}}, nsqd)
	p := &protocolV2{nsqd: nsqd}

	b.ReportAllocs()
	b.SetBytes(int64(len(cmd)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchExecLine(b, p, c)
	}
	benchWaitCount(b, delivered, int64(b.N))
}

// One PUB as in BenchmarkProtocolPUB, to a topic whose one channel has no
// consumer and a full memory queue, so every message is written behind to
// its disk queue: the steady state of `scenarios.sh pub1` (and of any
// publisher outrunning its consumers).
func BenchmarkProtocolPUBSpill(b *testing.B) {
	nsqd := benchStartNSQD(b, func(o *Options) { o.MemQueueSize = 100 })
	t := nsqd.GetTopic("t")
	ch := t.GetChannel("ch")
	t.Start()

	cmd := benchPUBCommand()
	c := newClientV2(1, benchConn{r: &repeatReader{data: cmd}}, nsqd)
	p := &protocolV2{nsqd: nsqd}
	for i := 0; i < 200; i++ { // fill the memory queue
		benchExecLine(b, p, c)
	}

	b.ReportAllocs()
	b.SetBytes(int64(len(cmd)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchExecLine(b, p, c)
	}
	b.StopTimer()
	if d := ch.Depth(); d < int64(b.N) {
		b.Fatalf("channel depth %d after %d PUBs", d, b.N)
	}
}

// One MPUB of 200 messages through the same path; an op is one message.
func BenchmarkProtocolMPUB(b *testing.B) {
	const batch = 200
	nsqd := benchStartNSQD(b, nil)
	_, delivered, stop := benchTopicWithChannels(b, nsqd, "t", 1)
	defer stop()

	var body []byte
	body = binary.BigEndian.AppendUint32(body, batch)
	for i := 0; i < batch; i++ {
		body = binary.BigEndian.AppendUint32(body, uint32(len(benchBody)))
		body = append(body, benchBody...)
	}
	cmd := binary.BigEndian.AppendUint32([]byte("MPUB t\n"), uint32(len(body)))
	cmd = append(cmd, body...)
	c := newClientV2(1, benchConn{r: &repeatReader{data: cmd}}, nsqd)
	p := &protocolV2{nsqd: nsqd}

	b.ReportAllocs()
	b.SetBytes(int64(len(cmd) / batch))
	b.ResetTimer()
	var published int64
	for published < int64(b.N) {
		benchExecLine(b, p, c)
		published += batch
	}
	benchWaitCount(b, delivered, published)
}

// benchExecLine does one iteration of the IOLoop's read-exec-respond.
func benchExecLine(b *testing.B, p *protocolV2, c *clientV2) {
	line, err := c.reader.ReadSlice('\n')
	if err != nil {
		b.Fatal(err)
	}
	line = line[:len(line)-1]
	resp, err := p.execLine(c, line)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.sendNow(frameTypeResponse, resp); err != nil {
		b.Fatal(err)
	}
}

// Topic.PutMessage and the topic pump's copy to every channel, until each
// channel's queue has been drained; an op is one published message.
func BenchmarkTopicPutMessage1Channel(b *testing.B)   { benchTopicFanOut(b, 1) }
func BenchmarkTopicPutMessage10Channels(b *testing.B) { benchTopicFanOut(b, 10) }

func benchTopicFanOut(b *testing.B, channels int) {
	nsqd := benchStartNSQD(b, nil)
	t, delivered, stop := benchTopicWithChannels(b, nsqd, "fanout", channels)
	defer stop()
	// IDs come from a counter: GenerateID has its own benchmark, and its
	// 4096-per-millisecond cap would otherwise set the pace
	var seq guid
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq++
		if err := t.PutMessage(NewMessage(seq.Hex(), benchBody)); err != nil {
			b.Fatal(err)
		}
	}
	benchWaitCount(b, delivered, int64(b.N)*int64(channels))
}

// The in-flight heap at a steady 2500 messages (one client at RDY 2500):
// push a message with a later deadline, remove one from a random position
// (a FIN out of order).
func BenchmarkInFlightPQPushRemove(b *testing.B) {
	const size = 2500
	pq := newMsgPQ(size)
	msgs := make([]*Message, size)
	now := time.Now().UnixNano()
	for i := range msgs {
		msgs[i] = &Message{pri: now + int64(i)}
		pq.Push(msgs[i])
	}
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := r.IntN(size)
		m := msgs[j]
		pq.Remove(m.index)
		m.pri = now + size + int64(i)
		pq.Push(m)
	}
}

// Push then PeekAndShift of due messages (the timeout scan's pattern).
func BenchmarkInFlightPQPushPeekAndShift(b *testing.B) {
	const size = 2500
	pq := newMsgPQ(size)
	msgs := make([]*Message, size)
	for i := range msgs {
		msgs[i] = &Message{pri: int64(i)}
		pq.Push(msgs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, _ := pq.PeekAndShift(int64(i) + size)
		if m == nil {
			b.Fatal("nothing due")
		}
		m.pri = int64(i) + 2*size
		pq.Push(m)
	}
}

// A delivery's bookkeeping on the channel and the FIN that ends it (map +
// heap under the in-flight lock), 2500 messages in flight.
func BenchmarkChannelInFlightFinish(b *testing.B) {
	const size = 2500
	nsqd := benchStartNSQD(b, nil)
	ch := nsqd.GetTopic("inflight").GetChannel("ch")
	msgs := make([]*Message, size)
	for i := range msgs {
		msgs[i] = NewMessage(guid(i+1).Hex(), benchBody)
		if err := ch.StartInFlightTimeout(msgs[i], 1, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%size]
		if err := ch.FinishMessage(1, m.ID); err != nil {
			b.Fatal(err)
		}
		if err := ch.StartInFlightTimeout(m, 1, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// Topic.GenerateID: the ID factory, its hex rendering, and the 1 ms waits
// once a tick's 4096 sequence numbers are used up, which cap one topic at
// ~3.9M IDs/s (BenchmarkGUID times the bare factory, failures included).
func BenchmarkTopicGenerateID(b *testing.B) {
	nsqd := benchStartNSQD(b, nil)
	t := nsqd.GetTopic("ids")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = t.GenerateID()
	}
}

// End to end over loopback: a raw-TCP publisher and a consumer (RDY 2500,
// FIN each) on one nsqd in this process; an op is one message published
// and consumed, allocations are the whole process's (nsqd plus the two
// clients, which reuse their buffers).
func BenchmarkE2EPubConsume(b *testing.B)     { benchE2E(b, 1) }
func BenchmarkE2EMPub200Consume(b *testing.B) { benchE2E(b, 200) }

func benchE2E(b *testing.B, batch int) {
	nsqd := benchStartNSQD(b, nil)
	addr := nsqd.RealTCPAddr().String()
	nsqd.GetTopic("e2e").GetChannel("ch")

	pub := benchDial(b, addr)
	defer pub.Close()
	sub := benchDial(b, addr)
	defer sub.Close()
	sub.w.WriteString("SUB e2e ch\n")
	sub.w.Flush()
	sub.expect(b, frameTypeResponse, "OK")
	sub.w.WriteString("RDY 2500\n")
	sub.w.Flush()

	var cmd []byte
	if batch == 1 {
		cmd = binary.BigEndian.AppendUint32([]byte("PUB e2e\n"), uint32(len(benchBody)))
		cmd = append(cmd, benchBody...)
	} else {
		cmd = binary.BigEndian.AppendUint32([]byte("MPUB e2e\n"), uint32(4+batch*(4+len(benchBody))))
		cmd = binary.BigEndian.AppendUint32(cmd, uint32(batch))
		for i := 0; i < batch; i++ {
			cmd = binary.BigEndian.AppendUint32(cmd, uint32(len(benchBody)))
			cmd = append(cmd, benchBody...)
		}
	}
	total := (b.N + batch - 1) / batch * batch
	// fail rather than hang if deliveries stop
	pub.SetDeadline(time.Now().Add(5 * time.Minute))
	sub.SetDeadline(time.Now().Add(5 * time.Minute))

	consumed := make(chan error, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	b.ResetTimer()
	go func() { consumed <- sub.consume(total) }()
	for sent := 0; sent < total; sent += batch {
		pub.w.Write(cmd)
		if err := pub.w.Flush(); err != nil {
			b.Fatal(err)
		}
		pub.expect(b, frameTypeResponse, "OK")
	}
	if err := <-consumed; err != nil {
		b.Fatal(err)
	}
}

// benchClient is a raw V2 connection with buffered reads and writes.
type benchClient struct {
	net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	buf []byte
	hdr [8]byte
}

func benchDial(b *testing.B, addr string) *benchClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchClient{Conn: conn, r: bufio.NewReaderSize(conn, 64*1024), w: bufio.NewWriterSize(conn, 64*1024), buf: make([]byte, 1024)}
	body := []byte(`{"client_id":"bench","hostname":"bench"}`)
	c.w.WriteString("  V2IDENTIFY\n")
	binary.Write(c.w, binary.BigEndian, int32(len(body)))
	c.w.Write(body)
	c.w.Flush()
	c.expect(b, frameTypeResponse, "OK")
	return c
}

func (c *benchClient) readFrame() (int32, []byte, error) {
	hdr := c.hdr[:]
	if _, err := io.ReadFull(c.r, hdr); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:4])) - 4
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	data := c.buf[:n]
	_, err := io.ReadFull(c.r, data)
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, err
}

func (c *benchClient) expect(b *testing.B, typ int32, data string) {
	for {
		t, d, err := c.readFrame()
		if err != nil {
			b.Fatal(err)
		}
		if t == frameTypeResponse && bytes.Equal(d, heartbeatBytes) {
			continue
		}
		if t != typ || string(d) != data {
			b.Fatalf("got frame %d %q, want %d %q", t, d, typ, data)
		}
		return
	}
}

// consume FINs messages until n have arrived, flushing the FINs whenever
// everything received so far is handled.
func (c *benchClient) consume(n int) error {
	fin := []byte("FIN 0123456789abcdef\n")
	for got := 0; got < n; {
		t, d, err := c.readFrame()
		if err != nil {
			return err
		}
		switch t {
		case frameTypeMessage:
			copy(fin[4:20], d[10:26])
			c.w.Write(fin)
			got++
		case frameTypeResponse:
			if bytes.Equal(d, heartbeatBytes) {
				c.w.WriteString("NOP\n")
			}
		case frameTypeError:
			return errors.New(string(d))
		}
		if c.r.Buffered() == 0 {
			if err := c.w.Flush(); err != nil {
				return err
			}
		}
	}
	return c.w.Flush()
}
