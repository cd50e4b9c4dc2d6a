package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/netdeadline"
)

// The fast path: a publisher posting one small request after another on a
// keep-alive connection spends most of nsqd's CPU in net/http (request
// parsing, header maps, the response writer, a background read per
// request), not in publishing. With a FastRoute set, a Server reads each
// connection itself: a plain HTTP/1.1 POST the route recognises, whose
// head and body are already whole in the buffer, is answered here, byte
// for byte as net/http would answer it. Anything else — another route, a
// header we do not know, HTTP/1.0, chunked bodies, Expect, a request the
// route wants net/http to answer (every 4xx) — hands the connection, with
// everything read so far, to net/http for the rest of its life. So the
// only requests served here are ones whose answer is fully known, and
// every other behaviour is net/http's own.

// FastRoute is the part of an API served on the fast path.
type FastRoute interface {
	// MatchFast reports whether a POST to path with a body of
	// contentLength (> 0) bytes may be served fast. Nothing of the request
	// has been consumed yet.
	MatchFast(path []byte, contentLength int64) bool
	// ServeFast answers a matched request; path, rawQuery and body are
	// valid only during the call. handled=false means nothing was changed
	// and net/http is to serve the request from its first byte (a route
	// returns it for every answer it does not produce itself). Otherwise
	// code and text are the V1 answer: text is the body of a 200 and the
	// message of an error.
	ServeFast(path, rawQuery, body []byte) (code int, text string, handled bool)
}

// Fast-path limits: a longer head or a larger request goes to net/http.
const (
	fastMaxHead    = 8 << 10
	fastMaxRequest = 1 << 20
	fastBufSize    = 4 << 10
	// fastKeepBuf is the largest input buffer an idle connection keeps
	// (an /mpub of 200 messages of 200 bytes is ~40 KB).
	fastKeepBuf = 64 << 10
)

// fastServer runs the accept loop of a Server with a FastRoute and owns
// the connections it has not handed to net/http.
type fastServer struct {
	route         FastRoute
	ln            net.Listener
	handoff       *handoffListener
	headerTimeout time.Duration
	idleTimeout   time.Duration
	logf          LogFunc

	closing  atomic.Bool
	answered atomic.Int64 // requests answered on the fast path
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[*fastConn]struct{}
}

func newFastServer(route FastRoute, ln net.Listener, hs *http.Server, logf LogFunc) *fastServer {
	return &fastServer{
		route:         route,
		ln:            ln,
		handoff:       newHandoffListener(ln.Addr()),
		headerTimeout: hs.ReadHeaderTimeout,
		idleTimeout:   hs.IdleTimeout,
		logf:          logf,
		conns:         make(map[*fastConn]struct{}),
	}
}

// acceptLoop accepts until the listener is closed. Temporary errors are
// retried with net/http's back-off.
func (s *fastServer) acceptLoop() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logf(lg.WARN, "http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fc := &fastConn{s: s, c: c}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[fc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go fc.serve()
	}
}

// isTemporary reports an error net/http's accept loop would retry.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// shutdown closes the idle connections; the others close after the
// answer in progress (with "Connection: close", as net/http in shutdown).
// It returns once all are closed, or when done is closed, closing the rest
// then without waiting for their goroutines (as http.Server.Close: one
// may be held by a publish that only the daemon's own exit lets go).
func (s *fastServer) shutdown(done <-chan struct{}) {
	s.closing.Store(true)
	s.ln.Close()
	s.mu.Lock()
	for fc := range s.conns {
		if fc.idle.Load() {
			fc.c.Close()
		}
	}
	s.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-done:
		s.mu.Lock()
		for fc := range s.conns {
			fc.c.Close()
		}
		s.mu.Unlock()
	}
}

// fastConn is one connection served by its own goroutine (serve) until it
// closes or goes to net/http. in[r:w] is what has been read and not yet
// consumed; out holds answers not yet written.
type fastConn struct {
	s        *fastServer
	c        net.Conn
	in       []byte
	r, w     int
	out      []byte
	deadline netdeadline.Lazy
	served   bool        // a request has been answered (later ones wait with the idle timeout)
	headSet  bool        // the header deadline of the request being read is set
	idle     atomic.Bool // waiting for the next request (shutdown may close it)
}

func (fc *fastConn) serve() {
	s := fc.s
	handedOff := false
	defer func() {
		if !handedOff {
			fc.c.Close()
		}
		s.mu.Lock()
		delete(s.conns, fc)
		s.mu.Unlock()
		s.wg.Done()
	}()
	for {
		req, st := parseFastHead(fc.in[fc.r:fc.w], s.route)
		if fc.served && fc.w-fc.r < keepAlivePeek {
			st = headIncomplete
		}
		switch st {
		case headNotFast:
			handedOff = fc.handOff(nil)
			return
		case headIncomplete:
			if err := fc.fill(false); err != nil {
				handedOff = fc.readFailed(err)
				return
			}
			continue
		}
		total := req.headLen + int(req.contentLength)
		if total > fastMaxRequest {
			handedOff = fc.handOff(nil)
			return
		}
		if fc.w-fc.r < total {
			// the body is still coming; the head is parsed again once it
			// is in (reading may move the buffer)
			fc.reserve(total)
			if err := fc.fill(true); err != nil {
				handedOff = fc.readFailed(err)
				return
			}
			continue
		}
		body := fc.in[fc.r+req.headLen : fc.r+total]
		code, text, handled := s.route.ServeFast(req.path, req.query, body)
		if !handled {
			handedOff = fc.handOff(nil)
			return
		}
		fc.r += total
		fc.served, fc.headSet = true, false
		s.answered.Add(1)
		closing := s.closing.Load()
		fc.out = appendV1Response(fc.out, code, text, closing)
		if closing {
			fc.flush()
			return
		}
		if fc.r == fc.w || len(fc.out) >= fastBufSize {
			// nothing more to answer at once (a pipelining client's
			// next request shares the write otherwise)
			if !fc.flush() {
				return
			}
		}
	}
}

// errWriteFailed ends a connection whose answers could not be written.
var errWriteFailed = errors.New("write failed")

// fill reads more input, after writing what is pending (a read may
// block), under net/http's deadlines (armDeadline).
func (fc *fastConn) fill(body bool) error {
	if !fc.flush() {
		return errWriteFailed
	}
	if fc.r == fc.w {
		fc.r, fc.w = 0, 0
		if cap(fc.in) > fastKeepBuf {
			fc.in = nil // a large request's buffer is not kept
		}
	}
	if fc.in == nil {
		fc.in = make([]byte, fastBufSize)
	}
	if fc.w == len(fc.in) {
		fc.grow()
	}
	waiting := fc.armDeadline(body)
	if waiting {
		fc.idle.Store(true)
		if fc.s.closing.Load() {
			return net.ErrClosed
		}
		// the next request is most likely not in yet: let an idle P spin
		// for it rather than park (see nsqd's yieldBeforeRead)
		runtime.Gosched()
	}
	n, err := fc.c.Read(fc.in[fc.w:])
	fc.idle.Store(false)
	fc.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// armDeadline sets the read deadline as net/http would have it: on a kept-
// alive connection the idle timeout until 4 bytes of the next request are
// in (waiting is then true); for a head, the header timeout from when it
// began (first request: from the accept), never moved by later reads, so a
// client trickling bytes is cut off all the same; none for a body.
func (fc *fastConn) armDeadline(body bool) (waiting bool) {
	s := fc.s
	switch {
	case body:
		if d, ok := fc.deadline.Next(0); ok {
			fc.c.SetReadDeadline(d)
		}
	case fc.served && fc.w-fc.r < keepAlivePeek:
		if d, ok := fc.deadline.Next(s.idleTimeout); ok {
			fc.c.SetReadDeadline(d)
		}
		return true
	case !fc.headSet:
		fc.headSet = true
		fc.deadline.Forget()
		if s.headerTimeout > 0 {
			fc.c.SetReadDeadline(time.Now().Add(s.headerTimeout))
		} else {
			fc.c.SetReadDeadline(time.Time{})
		}
	}
	return false
}

// readFailed ends a connection whose read failed. With nothing of a
// request read it is closed without an answer, as net/http does; with part
// of one read, net/http gets it and the error (what it answers to a
// truncated request is its own business: a 400 for half a request line, a
// handler's 500 for half a body, nothing for half a head).
func (fc *fastConn) readFailed(err error) bool {
	if fc.r == fc.w || fc.served && fc.w-fc.r < keepAlivePeek ||
		err == errWriteFailed || fc.s.closing.Load() {
		return false
	}
	return fc.handOff(err)
}

// keepAlivePeek is how many bytes net/http waits for on a kept-alive
// connection before it reads a request: fewer and an error or timeout
// closes it without an answer.
const keepAlivePeek = 4

// grow makes room at the end of in: the unread part moves to the front,
// and the buffer doubles if that is not enough.
func (fc *fastConn) grow() {
	if fc.r > 0 {
		fc.w = copy(fc.in, fc.in[fc.r:fc.w])
		fc.r = 0
		return
	}
	fc.reserve(2 * len(fc.in))
}

// reserve makes in hold at least n unread bytes (n <= fastMaxRequest).
func (fc *fastConn) reserve(n int) {
	if len(fc.in)-fc.r >= n {
		return
	}
	bigger := make([]byte, max(n, fastBufSize))
	fc.w = copy(bigger, fc.in[fc.r:fc.w])
	fc.r = 0
	fc.in = bigger
}

func (fc *fastConn) flush() bool {
	if len(fc.out) == 0 {
		return true
	}
	_, err := fc.c.Write(fc.out)
	fc.out = fc.out[:0]
	return err == nil
}

// handOff gives the connection to net/http with what is buffered, after
// writing the answers already made; readErr, if not nil, is what the read
// after those bytes returns. It reports whether net/http took it.
func (fc *fastConn) handOff(readErr error) bool {
	if !fc.flush() {
		return false
	}
	fc.c.SetReadDeadline(time.Time{})
	rc := &replayConn{Conn: fc.c, pending: bytes.Clone(fc.in[fc.r:fc.w]), err: readErr}
	return fc.s.handoff.deliver(rc)
}

// Results of parseFastHead.
const (
	headFast = iota
	headIncomplete
	headNotFast
)

type fastRequest struct {
	path, query   []byte
	headLen       int
	contentLength int64
}

// parseFastHead parses the request head at the start of b. It is strict:
// whatever net/http might treat differently from a plain request — any
// method but POST, any version but HTTP/1.1, a bare "\n", a header not
// listed here, a repeated Host or Content-Length, control or non-ASCII
// bytes — is headNotFast. A request line is judged as soon as it is in.
func parseFastHead(b []byte, route FastRoute) (fastRequest, int) {
	var req fastRequest
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		if len(b) > fastMaxHead {
			return req, headNotFast
		}
		return req, headIncomplete
	}
	line, ok := crlfLine(b[:eol+1])
	if !ok {
		return req, headNotFast
	}
	uri, ok := bytes.CutPrefix(line, []byte("POST "))
	if !ok {
		return req, headNotFast
	}
	uri, ok = bytes.CutSuffix(uri, []byte(" HTTP/1.1"))
	if !ok || len(uri) == 0 || uri[0] != '/' || !plainBytes(uri, false) {
		return req, headNotFast
	}
	req.path, req.query, _ = bytes.Cut(uri, []byte("?"))
	if !route.MatchFast(req.path, 1) {
		return req, headNotFast
	}

	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > fastMaxHead {
			return req, headNotFast
		}
		return req, headIncomplete
	}
	req.headLen = end + 4
	if req.headLen > fastMaxHead {
		return req, headNotFast
	}
	hosts, lengths := 0, 0
	req.contentLength = -1
	for rest := b[eol+1 : end+2]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line, ok := crlfLine(rest[:i+1])
		rest = rest[i+1:]
		if !ok {
			return req, headNotFast
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return req, headNotFast
		}
		value = bytes.Trim(value, " \t")
		if !plainBytes(value, true) {
			return req, headNotFast
		}
		switch {
		case equalFold(name, "Host"):
			hosts++
			if len(value) == 0 || !hostBytes(value) {
				return req, headNotFast
			}
		case equalFold(name, "Content-Length"):
			lengths++
			n, ok := parseDecimal(value)
			if !ok {
				return req, headNotFast
			}
			req.contentLength = n
		case equalFold(name, "Connection"):
			if !equalFold(value, "keep-alive") {
				return req, headNotFast
			}
		case equalFold(name, "Content-Type"), equalFold(name, "User-Agent"),
			equalFold(name, "Accept"), equalFold(name, "Accept-Encoding"):
		default:
			return req, headNotFast
		}
	}
	if hosts != 1 || lengths != 1 || req.contentLength <= 0 ||
		!route.MatchFast(req.path, req.contentLength) {
		return req, headNotFast
	}
	return req, headFast
}

// crlfLine strips the "\r\n" ending line; a bare "\n" is not ok.
func crlfLine(line []byte) ([]byte, bool) {
	return bytes.CutSuffix(line, []byte("\r\n"))
}

// plainBytes reports whether b is printable ASCII (with tabs if tabs):
// no control, DEL or non-ASCII byte, and no space unless tabs (a value).
func plainBytes(b []byte, value bool) bool {
	for _, c := range b {
		if c >= 0x7f || c < 0x20 && !(value && c == '\t') || c == ' ' && !value {
			return false
		}
	}
	return true
}

// hostBytes reports whether a Host value has only the bytes of a host
// name, an IPv4 or [IPv6] literal and a port.
func hostBytes(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// parseDecimal parses a Content-Length: digits only, at most 18.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// equalFold compares b with s ignoring the case of ASCII letters only (a
// '\r' must not pass for a '-').
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// appendV1Response appends the answer net/http gives for RespondV1(code,
// text) to a request with a fully read body: the handler's headers in
// sorted order, then Date, Content-Length, a sniffed Content-Type and, in
// shutdown, "Connection: close" (net/http's chunkWriter.writeHeader).
func appendV1Response(dst []byte, code int, text string, closing bool) []byte {
	var body []byte
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(code)...)
	dst = append(dst, "\r\n"...)
	if code == http.StatusOK {
		dst = append(dst, "X-Nsq-Content-Type: "+NSQContentTypeV1+"\r\n"...)
	} else {
		body, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{text})
		dst = append(dst, "Content-Type: "+ContentTypeJSON+"\r\nX-Nsq-Content-Type: "+NSQContentTypeV1+"\r\n"...)
	}
	dst = append(dst, "Date: "...)
	dst = appendDate(dst)
	dst = append(dst, "\r\nContent-Length: "...)
	n := len(body)
	if code == http.StatusOK {
		n = len(text)
	}
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, "\r\n"...)
	if code == http.StatusOK {
		dst = append(dst, "Content-Type: "...)
		if text == "OK" {
			dst = append(dst, okContentType...)
		} else {
			dst = append(dst, http.DetectContentType([]byte(text))...)
		}
		dst = append(dst, "\r\n"...)
	}
	if closing {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	if code == http.StatusOK {
		return append(dst, text...)
	}
	return append(dst, body...)
}

// okContentType is what net/http sniffs for the body "OK".
var okContentType = http.DetectContentType(okBody)

// httpDate caches the Date value of the current second.
type httpDate struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[httpDate]

// appendDate appends the current time as net/http writes it in Date.
func appendDate(dst []byte) []byte {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return append(dst, d.b...)
	}
	d := &httpDate{sec: sec, b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	dateCache.Store(d)
	return append(dst, d.b...)
}

// handoffListener is the listener net/http serves: its connections are
// those the fast path handed over.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// deliver waits for net/http to accept c; false if it no longer accepts.
func (l *handoffListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// replayConn is a connection whose first bytes were already read: Read
// returns them, then err once if it is set (the read that failed after
// them: a timeout stays a timeout although the deadline was cleared), then
// reads the socket.
type replayConn struct {
	net.Conn
	pending []byte
	err     error
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if err := c.err; err != nil {
		c.err = nil
		return 0, err
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close as it does on a bare TCP connection.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
