package nsqd

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/internal/netdeadline"
)

// Client states as shown in /stats (D-TCP-06).
const (
	stateInit = iota
	stateDisconnected
	stateConnected
	stateSubscribed
	stateClosing
)

const (
	defaultBufferSize = 16 * 1024

	frameTypeResponse int32 = 0
	frameTypeError    int32 = 1
	frameTypeMessage  int32 = 2
)

// identifyData is the IDENTIFY JSON body; unknown keys are ignored.
type identifyData struct {
	ClientID            string `json:"client_id"`
	Hostname            string `json:"hostname"`
	HeartbeatInterval   int    `json:"heartbeat_interval"`
	OutputBufferSize    int    `json:"output_buffer_size"`
	OutputBufferTimeout int    `json:"output_buffer_timeout"`
	FeatureNegotiation  bool   `json:"feature_negotiation"`
	TLSv1               bool   `json:"tls_v1"`
	Deflate             bool   `json:"deflate"`
	DeflateLevel        int    `json:"deflate_level"`
	Snappy              bool   `json:"snappy"`
	SampleRate          int32  `json:"sample_rate"`
	UserAgent           string `json:"user_agent"`
	MsgTimeout          int    `json:"msg_timeout"`
	TopologyRegion      string `json:"topology_region"`
	TopologyZone        string `json:"topology_zone"`
}

// identifyEvent carries the first IDENTIFY's settings to the message pump.
type identifyEvent struct {
	OutputBufferTimeout time.Duration
	HeartbeatInterval   time.Duration
	SampleRate          int32
	MsgTimeout          time.Duration
}

// clientV2 is one V2 connection.
//
// Goroutines and state: the connection's IOLoop goroutine owns the reader,
// the state machine, heartbeatInterval (read deadlines), msgTimeout (for
// TOUCH) and the pump settings. SUB starts the messagePump goroutine, which
// owns delivery from then on; before SUB a timer sends heartbeats. The
// IOLoop, the pump and the timer all write frames, so the writer, the
// socket writer under it (sock) and writeTimeout sit behind writeLock.
// Counters are atomics; metadata shown in stats sits behind metaLock.
type clientV2 struct {
	readyCount    atomic.Int64
	inFlightCount atomic.Int64
	messageCount  atomic.Uint64
	finishCount   atomic.Uint64
	requeueCount  atomic.Uint64
	state         atomic.Int32

	ID   int64
	nsqd *NSQD
	net.Conn

	reader *bufio.Reader
	// IOLoop-owned: the current command's parameters (splitParams), valid
	// until the next command is read, and the read deadline's bookkeeping
	params       [][]byte
	paramsArr    [8][]byte
	readDeadline netdeadline.Lazy
	// IOLoop-owned: the topic of the last PUB/DPUB/MPUB (pubTopic) and
	// its entry in pubCounts (publishedMessage)
	lastPubTopic *Topic
	lastPubCount *pubCount
	// IOLoop-owned: the last PUB's message and body when nothing kept
	// them (it went to disk only), for the next PUB to reuse
	pubSpare *Message
	// IOLoop-owned: FINs read but not applied yet (pump_batch.go)
	fins finBatch

	writeLock    sync.Mutex
	writer       *bufio.Writer
	writeTimeout time.Duration
	// unbuffered: output_buffer_size -1, every frame is flushed at once
	unbuffered  bool
	frameHeader [8 + wireHeaderLength]byte

	// held by the pump while it delivers; publishers delivering directly
	// only TryLock it. flushKick (nil unless direct delivery is on) asks
	// the pump to flush what such a publisher left buffered (direct.go).
	deliverTok sync.Mutex
	flushKick  chan struct{}

	// TLS/snappy/deflate layers under reader and writer (client_upgrade.go)
	connLayers

	// IOLoop-owned
	heartbeatInterval   time.Duration
	msgTimeout          time.Duration
	outputBufferSize    int
	outputBufferTimeout time.Duration
	sampleRate          int32
	channel             *Channel

	connectTime    time.Time
	readyStateChan chan struct{}
	exitChan       chan struct{}
	// pumpSettings are the first IDENTIFY's settings (or the defaults):
	// the message pump starts with them at SUB (D-TCP-12). IOLoop-owned.
	pumpSettings identifyEvent
	identified   bool
	pumpDone     chan struct{} // nil until SUB starts the pump

	// before SUB there is no pump: a timer sends the heartbeats
	hbMu      sync.Mutex
	hbTimer   *time.Timer
	hbStopped bool

	metaLock       sync.RWMutex
	clientID       string
	hostname       string
	userAgent      string
	topologyRegion string
	topologyZone   string
	// statsSampleRate mirrors the IOLoop-owned sampleRate for /stats
	statsSampleRate int32
	// pubCounts: messages published per topic; the map is guarded by
	// metaLock, the counts are atomic (the IOLoop adds to the last
	// topic's without the lock)
	pubCounts map[string]*pubCount
	// auth is the AUTH state (auth.go)
	auth clientAuth
}

func newClientV2(id int64, conn net.Conn, n *NSQD) *clientV2 {
	var identifier string
	if conn != nil {
		identifier, _, _ = net.SplitHostPort(conn.RemoteAddr().String())
	}
	opts := n.getOpts()
	c := &clientV2{
		ID:   id,
		nsqd: n,
		Conn: conn,

		reader: bufio.NewReaderSize(conn, defaultBufferSize),

		outputBufferSize:    defaultBufferSize,
		outputBufferTimeout: opts.OutputBufferTimeout,
		msgTimeout:          opts.MsgTimeout,
		// heartbeats every half client timeout: two missed beats disconnect
		heartbeatInterval: opts.ClientTimeout / 2,

		connectTime:    time.Now(),
		readyStateChan: make(chan struct{}, 1),
		exitChan:       make(chan struct{}),

		clientID: identifier,
		hostname: identifier,
	}
	c.params = c.paramsArr[:0]
	// tcp.go's protocol magic read left a read deadline behind
	c.readDeadline.Forget()
	c.sock = socketWriter{c: c, w: conn}
	c.sock.deadline.Forget()
	c.writer = bufio.NewWriterSize(&c.sock, defaultBufferSize)
	c.writeTimeout = c.heartbeatInterval
	c.state.Store(stateInit)
	return c
}

func (c *clientV2) String() string { return c.RemoteAddr().String() }

// identify applies an IDENTIFY body (D-TCP-13..18). It mirrors NSQ's order:
// metadata first, then heartbeat, output buffer (timeout before size),
// sample rate and msg timeout; the first invalid value aborts.
func (c *clientV2) identify(data identifyData) error {
	c.metaLock.Lock()
	c.clientID = data.ClientID
	c.hostname = data.Hostname
	c.userAgent = data.UserAgent
	c.topologyRegion = data.TopologyRegion
	c.topologyZone = data.TopologyZone
	c.metaLock.Unlock()

	if err := c.setHeartbeatInterval(data.HeartbeatInterval); err != nil {
		return err
	}
	if err := c.setOutputBuffer(data.OutputBufferSize, data.OutputBufferTimeout); err != nil {
		return err
	}
	if err := c.setSampleRate(data.SampleRate); err != nil {
		return err
	}
	if err := c.setMsgTimeout(data.MsgTimeout); err != nil {
		return err
	}
	c.metaLock.Lock()
	c.statsSampleRate = c.sampleRate
	c.metaLock.Unlock()

	ev := identifyEvent{
		OutputBufferTimeout: c.outputBufferTimeout,
		HeartbeatInterval:   c.heartbeatInterval,
		SampleRate:          c.sampleRate,
		MsgTimeout:          c.msgTimeout,
	}
	// only the first IDENTIFY sets the pump's settings (D-TCP-12)
	if !c.identified {
		c.identified = true
		c.pumpSettings = ev
		c.startHeartbeats(ev.HeartbeatInterval)
	}
	return nil
}

// startHeartbeats (re)arms the pre-SUB heartbeat timer: every interval a
// _heartbeat_ frame (D-TCP-48); interval <= 0 turns them off. Producers
// and idle connections thus cost no goroutine besides their IOLoop.
func (c *clientV2) startHeartbeats(interval time.Duration) {
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	if c.hbTimer != nil {
		c.hbTimer.Stop()
		c.hbTimer = nil
	}
	if interval <= 0 || c.hbStopped {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(interval, func() {
		if err := c.sendNow(frameTypeResponse, heartbeatBytes); err != nil {
			c.Conn.Close() // the IOLoop sees the close and cleans up
			return
		}
		c.hbMu.Lock()
		if c.hbTimer == t && !c.hbStopped {
			t.Reset(interval)
		}
		c.hbMu.Unlock()
	})
	c.hbTimer = t
}

// stopHeartbeats ends the pre-SUB heartbeats for good (SUB or exit).
func (c *clientV2) stopHeartbeats() {
	c.hbMu.Lock()
	defer c.hbMu.Unlock()
	c.hbStopped = true
	if c.hbTimer != nil {
		c.hbTimer.Stop()
		c.hbTimer = nil
	}
}

func (c *clientV2) setHeartbeatInterval(ms int) error {
	opts := c.nsqd.getOpts()
	switch {
	case ms == -1:
		c.heartbeatInterval = 0
	case ms == 0:
	case ms >= 1000 && ms <= int(opts.MaxHeartbeatInterval/time.Millisecond):
		c.heartbeatInterval = time.Duration(ms) * time.Millisecond
	default:
		return fmt.Errorf("heartbeat interval (%d) is invalid", ms)
	}
	c.writeLock.Lock()
	c.writeTimeout = c.heartbeatInterval
	c.writeLock.Unlock()
	return nil
}

func (c *clientV2) setOutputBuffer(size int, timeoutMs int) error {
	opts := c.nsqd.getOpts()
	switch {
	case timeoutMs == -1:
		c.outputBufferTimeout = 0
	case timeoutMs == 0:
	case timeoutMs >= int(opts.MinOutputBufferTimeout/time.Millisecond) &&
		timeoutMs <= int(opts.MaxOutputBufferTimeout/time.Millisecond):
		c.outputBufferTimeout = time.Duration(timeoutMs) * time.Millisecond
	default:
		return fmt.Errorf("output buffer timeout (%d) is invalid", timeoutMs)
	}

	switch {
	case size == -1:
		// effectively unbuffered: every frame goes out at once
		c.outputBufferSize = 1
		c.outputBufferTimeout = 0
	case size == 0:
	case size >= 64 && size <= int(opts.MaxOutputBufferSize):
		c.outputBufferSize = size
	default:
		return fmt.Errorf("output buffer size (%d) is invalid", size)
	}

	if size != 0 {
		c.writeLock.Lock()
		defer c.writeLock.Unlock()
		if err := c.flushLocked(); err != nil {
			return err
		}
		c.unbuffered = c.outputBufferSize == 1
		c.writer = bufio.NewWriterSize(c.writeTarget(), c.writerSize())
	}
	return nil
}

// unbufferedWriterSize is the buffer behind an unbuffered client's writer
// (output_buffer_size -1). Such a client gets every frame at once, but as
// one write(2): NSQ's writer of one byte sends a message's header and body
// in two, so the consumer wakes twice and reads a half frame in between.
const unbufferedWriterSize = 4096

// writerSize is the size of c.writer's buffer (writeLock held). The
// output_buffer_size -1 is kept as 1 for IDENTIFY's answer; it means
// flushing every frame (unbuffered).
func (c *clientV2) writerSize() int {
	if c.unbuffered {
		return unbufferedWriterSize
	}
	return c.outputBufferSize
}

func (c *clientV2) setSampleRate(rate int32) error {
	if rate < 0 || rate > 99 {
		return fmt.Errorf("sample rate (%d) is invalid", rate)
	}
	c.sampleRate = rate
	return nil
}

func (c *clientV2) setMsgTimeout(ms int) error {
	opts := c.nsqd.getOpts()
	switch {
	case ms == 0:
	case ms >= 1000 && ms <= int(opts.MaxMsgTimeout/time.Millisecond):
		c.msgTimeout = time.Duration(ms) * time.Millisecond
	default:
		return fmt.Errorf("msg timeout (%d) is invalid", ms)
	}
	return nil
}

// isReadyForMessages: RDY is a cap on outstanding messages (D-TCP-34).
func (c *clientV2) isReadyForMessages(ch *Channel) bool {
	if ch == nil || ch.IsPaused() {
		return false
	}
	ready := c.readyCount.Load()
	return ready > 0 && c.inFlightCount.Load() < ready
}

func (c *clientV2) setReadyCount(count int64) {
	old := c.readyCount.Swap(count)
	if old != count {
		c.tryUpdateReadyState()
	}
}

// tryUpdateReadyState wakes the pump to re-evaluate readiness.
func (c *clientV2) tryUpdateReadyState() {
	select {
	case c.readyStateChan <- struct{}{}:
	default:
	}
}

func (c *clientV2) sendingMessage() {
	c.inFlightCount.Add(1)
	c.messageCount.Add(1)
}

func (c *clientV2) requeuedMessage() {
	c.requeueCount.Add(1)
	c.inFlightDone()
}

// TimedOutMessage implements Consumer.
func (c *clientV2) TimedOutMessage() {
	c.inFlightDone()
}

// inFlightDone counts one message fewer in flight, and wakes the pump only
// if that can make it ready again, i.e. it was at or over RDY (D-TCP-34).
// Under RDY the pump already waits for messages. NSQ wakes it on every
// FIN: when draining a backlog, about half of its loop turns were such
// idle wake-ups (docs/performance.md).
//
// No wake-up is lost: the pump stops taking messages only after seeing
// in_flight >= RDY, only the pump raises in_flight, so the decrement that
// takes in_flight under RDY again starts from >= RDY; a RDY change wakes
// the pump itself (setReadyCount), and Empty always does.
func (c *clientV2) inFlightDone() { c.inFlightDoneN(1) }

// inFlightDoneN is inFlightDone for n messages at once.
func (c *clientV2) inFlightDoneN(n int64) {
	if c.inFlightCount.Add(-n)+n >= c.readyCount.Load() {
		c.tryUpdateReadyState()
	}
}

// Empty implements Consumer: the channel dropped its in-flight set.
func (c *clientV2) Empty() {
	c.inFlightCount.Store(0)
	c.tryUpdateReadyState()
}

// Pause implements Consumer.
func (c *clientV2) Pause() { c.tryUpdateReadyState() }

// UnPause implements Consumer.
func (c *clientV2) UnPause() { c.tryUpdateReadyState() }

// Close implements Consumer: forcibly drop the connection.
func (c *clientV2) Close() error { return c.Conn.Close() }

func (c *clientV2) startClose() {
	c.setReadyCount(0)
	c.state.Store(stateClosing)
}

func (c *clientV2) publishedMessage(topic string, count uint64) {
	if pc := c.lastPubCount; pc != nil && pc.topic == topic {
		pc.n.Add(count)
		return
	}
	c.metaLock.Lock()
	if c.pubCounts == nil {
		c.pubCounts = make(map[string]*pubCount)
	}
	pc := c.pubCounts[topic]
	if pc == nil {
		pc = &pubCount{topic: topic}
		c.pubCounts[topic] = pc
	}
	pc.n.Add(count)
	c.metaLock.Unlock()
	c.lastPubCount = pc
}

// pubCount is a client's count of messages published to one topic.
type pubCount struct {
	topic string
	n     atomic.Uint64
}

// writeFrameLocked writes one frame; the caller holds writeLock. The write
// deadline is set by socketWriter, when bytes go to the socket.
func (c *clientV2) writeFrameLocked(frameType int32, data []byte) error {
	hdr := c.frameHeader[:8]
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(data)+4))
	binary.BigEndian.PutUint32(hdr[4:8], uint32(frameType))
	if _, err := c.writer.Write(hdr); err != nil {
		return err
	}
	_, err := c.writer.Write(data)
	return err
}

// sendNow writes a frame and flushes it (responses, errors, heartbeats are
// never held back, D-TCP-50).
func (c *clientV2) sendNow(frameType int32, data []byte) error {
	c.writeLock.Lock()
	defer c.writeLock.Unlock()
	if err := c.writeFrameLocked(frameType, data); err != nil {
		return err
	}
	return c.flushLocked()
}

// sendResponse writes a response frame, flushing it unless flush is false
// (more commands are already waiting, so their responses can share a write).
func (c *clientV2) sendResponse(data []byte, flush bool) error {
	c.writeLock.Lock()
	defer c.writeLock.Unlock()
	if err := c.writeFrameLocked(frameTypeResponse, data); err != nil {
		return err
	}
	if !flush {
		return nil
	}
	return c.flushLocked()
}

// writeMessage buffers a message frame (flushed by the pump's rules).
func (c *clientV2) writeMessage(m *Message) error {
	c.writeLock.Lock()
	defer c.writeLock.Unlock()
	return c.writeMessageLocked(m)
}

func (c *clientV2) writeMessageLocked(m *Message) error {
	hdr := c.frameHeader[:]
	putFrameHeader(hdr, m)
	if _, err := c.writer.Write(hdr); err != nil {
		return err
	}
	if _, err := c.writer.Write(m.Body); err != nil {
		return err
	}
	// output_buffer_size -1 means unbuffered: nothing may stay behind
	if c.unbuffered {
		return c.flushLocked()
	}
	return nil
}

// putFrameHeader fills hdr with m's frame header: size, type, and the
// message's own header (timestamp, attempts, ID).
func putFrameHeader(hdr []byte, m *Message) {
	binary.BigEndian.PutUint32(hdr[0:4], uint32(4+wireHeaderLength+len(m.Body)))
	binary.BigEndian.PutUint32(hdr[4:8], uint32(frameTypeMessage))
	m.writeWireHeader(hdr[8:])
}

func (c *clientV2) flush() error {
	c.writeLock.Lock()
	defer c.writeLock.Unlock()
	if !c.unflushedLocked() {
		return nil
	}
	return c.flushLocked()
}

// armReadDeadline moves the read deadline (lazily) before a read that may
// reach the socket: two missed heartbeats disconnect (D-TCP-08).
func (c *clientV2) armReadDeadline() {
	if d, ok := c.readDeadline.Next(c.heartbeatInterval * 2); ok {
		c.SetReadDeadline(d)
	}
}

// socketWriter is the bottom of the write stack: every Write goes straight
// to the socket (or through TLS to it), so this is where the write deadline
// is set, rather than per frame (most frames only reach the output buffer).
// A consumer that stops reading still makes the write under way fail after
// writeTimeout, and its connection is dropped (D-TCP-08). The caller holds
// writeLock.
type socketWriter struct {
	c        *clientV2
	w        io.Writer // c.Conn, or the TLS connection over it
	deadline netdeadline.Lazy
}

func (s *socketWriter) Write(p []byte) (int, error) {
	if t, ok := s.deadline.Next(s.c.writeTimeout); ok {
		s.c.Conn.SetWriteDeadline(t)
	}
	return s.w.Write(p)
}
