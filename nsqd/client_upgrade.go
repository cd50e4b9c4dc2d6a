package nsqd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/snappy"

	"github.com/ournsq/nsq/internal/lg"
)

// Stream upgrades negotiated by IDENTIFY (spec D-TCP-19..25, D-CMP-01/02).
//
// Layering, from the socket up:
//
//	socket (c.Conn) → TLS (optional) → snappy or deflate (optional) → bufio
//
// in both directions. c.reader and c.writer always sit on top; the layers
// below them are recorded here so that later swaps (a new output buffer
// size, the next upgrade) stack on the right stream. At the bottom of the
// write side, sock (socketWriter, client_v2.go) writes to the socket or to
// TLS and sets the write deadline whenever bytes go out.
type connLayers struct {
	// readSrc is the stream c.reader reads from; nil means the socket.
	// Owned by the IOLoop goroutine (which also owns c.reader).
	readSrc io.Reader
	// writeDst is the stream c.writer writes to; nil means sock.
	// compressor is non-nil once snappy or deflate is on; it must be
	// flushed after c.writer. sock writes to the socket, or to TLS once
	// upgraded. All three are guarded by writeLock.
	writeDst   io.Writer
	compressor *compressWriter
	sock       socketWriter

	// for /stats (D-HTTP-21, D-TLS-03); set once, read from any goroutine
	tlsConnState atomic.Pointer[tls.ConnectionState]
	snappyOn     atomic.Bool
	deflateOn    atomic.Bool
}

// compressWriter is a compressing stream whose Flush emits everything
// written so far (snappy: complete chunks; deflate: a sync flush). It only
// flushes when something was written since the last flush, so an idle
// output-buffer tick puts no empty deflate blocks on the wire.
type compressWriter struct {
	w interface {
		io.Writer
		Flush() error
	}
	pending bool
}

func (cw *compressWriter) Write(p []byte) (int, error) {
	cw.pending = true
	return cw.w.Write(p)
}

func (cw *compressWriter) Flush() error {
	if !cw.pending {
		return nil
	}
	cw.pending = false
	return cw.w.Flush()
}

// prefixedConn is a net.Conn whose reads first return bytes that an older
// reader had already buffered (a client that pipelined its TLS hello right
// behind IDENTIFY).
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// writeTarget is the stream under c.writer; the caller holds writeLock.
func (c *clientV2) writeTarget() io.Writer {
	if c.writeDst != nil {
		return c.writeDst
	}
	return &c.sock
}

// flushLocked pushes the output buffer, and the compressor below it, onto
// the wire; the caller holds writeLock.
func (c *clientV2) flushLocked() error {
	if err := c.writer.Flush(); err != nil {
		return err
	}
	if c.compressor != nil {
		return c.compressor.Flush()
	}
	return nil
}

// unflushedLocked reports data waiting in the output buffer or in the
// compressor; the caller holds writeLock.
func (c *clientV2) unflushedLocked() bool {
	return c.writer.Buffered() > 0 || (c.compressor != nil && c.compressor.pending)
}

// grantUpgrades decides what this IDENTIFY grants (D-TCP-21..23). An
// upgrade already in effect from an earlier IDENTIFY (D-TCP-12) is not
// granted again, and TLS is not started under an active compression: NSQ
// would corrupt such a stream, we answer false and keep the stream as is.
func (c *clientV2) grantUpgrades(opts *Options, data identifyData) (tlsv1, deflate, snappy bool) {
	compressed := c.snappyOn.Load() || c.deflateOn.Load()
	tlsv1 = data.TLSv1 && c.nsqd.tlsConfig != nil && c.tlsConnState.Load() == nil && !compressed
	deflate = data.Deflate && opts.DeflateEnabled && !c.deflateOn.Load()
	snappy = data.Snappy && opts.SnappyEnabled && !c.snappyOn.Load()
	return
}

// compressionConflict: deflate and snappy would both be on (D-TCP-24).
func (c *clientV2) compressionConflict(deflate, snappy bool) bool {
	return (deflate || c.deflateOn.Load()) && (snappy || c.snappyOn.Load())
}

// respondAndUpgrade sends the IDENTIFY JSON in the current stream, then
// performs the granted upgrades in NSQ's order — TLS, snappy, deflate — each
// acknowledged by an OK frame sent through the upgraded stream (D-TCP-25).
// It runs on the IOLoop goroutine and holds writeLock throughout, so the
// message pump cannot slip a heartbeat between two layers.
func (c *clientV2) respondAndUpgrade(resp []byte, tlsv1, useSnappy, useDeflate bool, deflateLevel int) error {
	c.writeLock.Lock()
	defer c.writeLock.Unlock()

	if err := c.sendLocked(frameTypeResponse, resp); err != nil {
		return err
	}
	if tlsv1 {
		c.nsqd.logf(lg.INFO, "PROTOCOL(V2): [%s] upgrading connection to TLS", c)
		if err := c.upgradeTLSLocked(); err != nil {
			return err
		}
		if err := c.sendLocked(frameTypeResponse, okBytes); err != nil {
			return err
		}
	}
	if useSnappy {
		c.nsqd.logf(lg.INFO, "PROTOCOL(V2): [%s] upgrading connection to snappy", c)
		c.upgradeCompressionLocked(
			func(r io.Reader) io.Reader { return snappy.NewReader(r) },
			snappy.NewWriter(c.writeTarget()))
		c.snappyOn.Store(true)
		if err := c.sendLocked(frameTypeResponse, okBytes); err != nil {
			return err
		}
	}
	if useDeflate {
		c.nsqd.logf(lg.INFO, "PROTOCOL(V2): [%s] upgrading connection to deflate (level %d)", c, deflateLevel)
		fw, err := flate.NewWriter(c.writeTarget(), deflateLevel)
		if err != nil {
			return err
		}
		c.upgradeCompressionLocked(
			func(r io.Reader) io.Reader { return flate.NewReader(r) }, fw)
		c.deflateOn.Store(true)
		if err := c.sendLocked(frameTypeResponse, okBytes); err != nil {
			return err
		}
	}
	return nil
}

// sendLocked writes and flushes one frame; the caller holds writeLock.
func (c *clientV2) sendLocked(frameType int32, data []byte) error {
	if err := c.writeFrameLocked(frameType, data); err != nil {
		return err
	}
	return c.flushLocked()
}

// pendingInput returns src preceded by whatever c.reader had already read
// off it but not consumed, so no byte is lost when c.reader is replaced.
func (c *clientV2) pendingInput(src io.Reader) io.Reader {
	n := c.reader.Buffered()
	if n == 0 {
		return src
	}
	buf, _ := c.reader.Peek(n)
	return io.MultiReader(bytes.NewReader(append([]byte(nil), buf...)), src)
}

// upgradeTLSLocked runs the server side of the TLS handshake within
// tlsHandshakeTimeout and moves both directions onto TLS (D-TCP-21).
func (c *clientV2) upgradeTLSLocked() error {
	var conn net.Conn = c.Conn
	if c.reader.Buffered() > 0 {
		conn = &prefixedConn{Conn: c.Conn, r: c.pendingInput(c.Conn)}
	}
	tlsConn := tls.Server(conn, c.nsqd.tlsConfig)
	c.Conn.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	err := tlsConn.Handshake()
	// the IOLoop and the writers set their own deadlines from here on
	c.Conn.SetDeadline(time.Time{})
	c.readDeadline.Forget()
	c.sock.deadline.Forget()
	if err != nil {
		return err
	}
	state := tlsConn.ConnectionState()
	c.readSrc = tlsConn
	c.reader = bufio.NewReaderSize(tlsConn, defaultBufferSize)
	// under the output buffer: sock, now writing TLS records
	c.sock.w = tlsConn
	c.writer = bufio.NewWriterSize(c.writeTarget(), c.writerSize())
	c.tlsConnState.Store(&state)
	return nil
}

// upgradeCompressionLocked puts a decompressor under c.reader and the
// compressor w under c.writer (D-CMP-01/02).
func (c *clientV2) upgradeCompressionLocked(newReader func(io.Reader) io.Reader, w interface {
	io.Writer
	Flush() error
}) {
	src := c.readSrc
	if src == nil {
		src = c.Conn
	}
	r := newReader(c.pendingInput(src))
	c.readSrc = r
	c.reader = bufio.NewReaderSize(r, defaultBufferSize)

	c.compressor = &compressWriter{w: w}
	c.writeDst = c.compressor
	c.writer = bufio.NewWriterSize(c.compressor, c.writerSize())
}

// layerStats fills the negotiated-feature fields of a client's stats
// (D-HTTP-21, D-TLS-03).
func (c *clientV2) layerStats(s *ClientStats) {
	s.Deflate = c.deflateOn.Load()
	s.Snappy = c.snappyOn.Load()
	st := c.tlsConnState.Load()
	if st == nil {
		return
	}
	s.TLS = true
	s.TLSVersion = tlsVersionName(st.Version)
	s.CipherSuite = cipherSuiteName(st.CipherSuite)
	s.TLSNegotiatedProto = st.NegotiatedProtocol
	// crypto/tls no longer negotiates NPN: ALPN results are always mutual
	s.TLSNegotiatedMutual = true
}
