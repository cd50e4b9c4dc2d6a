package nsqd

// Fuzz targets for the V2 TCP protocol (robustness issue, part 1). Each
// fuzz process starts one real nsqd (127.0.0.1:0, temp dir, small limits)
// and feeds every input through the real listener, tcpServer.handle and
// ioLoop, as a client would. Oracles, checked on every input:
//
//   - every frame nsqd sends is [uint32 size][int32 type][data] with type
//     0/1/2 and a consistent size; messages carry a 16-hex ID, attempts >= 1
//     and a body within --max-msg-size; errors are "E_<CODE>[ text]";
//   - after a fatal error frame no response or error frame follows (only a
//     message the pump had already queued may), and the connection closes;
//   - the connection's handler exits once the client has gone (no leak);
//   - the daemon stays up: a fresh connection can still PUB and gets OK.
//
// A panic anywhere in nsqd kills the fuzz process, which the fuzzer reports
// with the input. Seeds: testdata/fuzz/FuzzXxx (regenerate with
// NSQ_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./nsqd).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/snappy"

	"github.com/ournsq/nsq/internal/auth"
	"github.com/ournsq/nsq/internal/lg"
)

const (
	// small limits so the fuzzer reaches every bound
	fzMaxMsgSize  = 1024
	fzMaxBodySize = 4096
	// fzIOTimeout bounds every wait on nsqd; hitting it means a hang
	fzIOTimeout = 10 * time.Second
	// fzMaxTopics: above this many topics the fuzz instance is cleaned up
	fzMaxTopics = 32
	// fzProbeTopic is what the liveness probe publishes to; ephemeral, so
	// its overflow is dropped instead of filling the disk
	fzProbeTopic = "fzprobe#ephemeral"
)

type fzDiscardLogger struct{}

func (fzDiscardLogger) Output(int, string) error { return nil }

// fzLogger discards nsqd's log unless NSQ_FUZZ_LOG is set.
func fzLogger() (lg.Logger, lg.LogLevel) {
	if os.Getenv("NSQ_FUZZ_LOG") != "" {
		return log.New(os.Stderr, "", log.Lmicroseconds), lg.DEBUG
	}
	return fzDiscardLogger{}, lg.INFO
}

// fzStartNSQD starts the nsqd this fuzz process uses for all its inputs.
func fzStartNSQD(f *testing.F, mutate func(*Options)) *NSQD {
	f.Helper()
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = ""
	opts.HTTPSAddress = ""
	opts.DataPath = f.TempDir()
	opts.Logger, opts.LogLevel = fzLogger()
	opts.MemQueueSize = 64
	opts.MaxMsgSize = fzMaxMsgSize
	opts.MaxBodySize = fzMaxBodySize
	opts.MaxBytesPerFile = 1 << 20
	if mutate != nil {
		mutate(opts)
	}
	n, err := New(opts)
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Main()
	}()
	f.Cleanup(func() {
		n.Exit()
		<-done
	})
	return n
}

// fzFrame is one frame received from nsqd.
type fzFrame struct {
	typ  int32
	data []byte
}

func (fr fzFrame) String() string {
	d := fr.data
	if len(d) > 64 {
		d = d[:64]
	}
	return fmt.Sprintf("{type %d %q}", fr.typ, d)
}

var fzErrorFrameRE = regexp.MustCompile(`^E_[A-Z_]+( |$)`)

// fzNonFatal are the only error codes after which a V2 connection stays up
// (D-ERR: FIN/REQ/TOUCH failures).
var fzNonFatal = map[string]bool{"E_FIN_FAILED": true, "E_REQ_FAILED": true, "E_TOUCH_FAILED": true}

func fzIsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func fzIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fzFrameReader reads and checks V2 frames, following the compression an
// IDENTIFY response grants the way a client does (the JSON answer is plain,
// everything after it is compressed).
type fzFrameReader struct {
	t          testing.TB
	maxMsgSize int
	br         *bufio.Reader
	cur        io.Reader
	compressed bool
	fatal      string // the fatal error code seen, if any
	reset      bool   // the stream ended in a reset
	frames     []fzFrame
}

func newFzFrameReader(t testing.TB, r io.Reader, maxMsgSize int) *fzFrameReader {
	br := bufio.NewReader(r)
	return &fzFrameReader{t: t, maxMsgSize: maxMsgSize, br: br, cur: br}
}

// next returns the next checked frame; ok is false at a clean end of the
// stream (EOF, reset, or the end of an unterminated compressed stream).
func (fr *fzFrameReader) next() (frame fzFrame, ok bool) {
	t := fr.t
	t.Helper()
	var hdr [8]byte
	n, err := io.ReadFull(fr.cur, hdr[:4])
	if err != nil {
		switch {
		case fzIsTimeout(err):
			t.Fatalf("nsqd neither answered nor closed within %s (frames so far %v)", fzIOTimeout, fr.frames)
		case fzIsReset(err):
			// nsqd closed with our input unread: the kernel may drop
			// what it had sent, nothing more to check
			fr.reset = true
			return frame, false
		case n == 0 && (err == io.EOF || fr.compressed):
			return frame, false
		}
		t.Fatalf("partial frame header (%d bytes): %v (frames so far %v)", n, err, fr.frames)
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 {
		t.Fatalf("frame size %d < 4 (frames so far %v)", size, fr.frames)
	}
	// the largest frame is a message; responses and errors are far smaller
	// (an error may quote a 16 KiB command line, %q-escaped)
	if limit := uint32(4 + wireHeaderLength + max(fr.maxMsgSize, 256<<10)); size > limit {
		t.Fatalf("frame size %d > %d (frames so far %v)", size, limit, fr.frames)
	}
	rest := make([]byte, size)
	if n, err := io.ReadFull(fr.cur, rest); err != nil {
		if fzIsReset(err) {
			fr.reset = true
			return frame, false
		}
		t.Fatalf("frame of size %d cut after %d bytes: %v (frames so far %v)", size, n, err, fr.frames)
	}
	frame = fzFrame{typ: int32(binary.BigEndian.Uint32(rest[:4])), data: rest[4:]}
	if fr.fatal != "" && frame.typ != frameTypeMessage {
		t.Fatalf("frame %v after the fatal error %s", frame, fr.fatal)
	}
	switch frame.typ {
	case frameTypeResponse:
		fr.checkResponse(frame.data)
	case frameTypeError:
		if !fzErrorFrameRE.Match(frame.data) {
			t.Fatalf("malformed error frame %q", frame.data)
		}
		code, _, _ := bytes.Cut(frame.data, []byte(" "))
		if !fzNonFatal[string(code)] {
			fr.fatal = string(code)
		}
	case frameTypeMessage:
		fzCheckWireMessage(t, frame.data, fr.maxMsgSize)
	default:
		t.Fatalf("frame type %d", frame.typ)
	}
	fr.frames = append(fr.frames, frame)
	return frame, true
}

// all reads frames until the stream ends.
func (fr *fzFrameReader) all() []fzFrame {
	for {
		if _, ok := fr.next(); !ok {
			return fr.frames
		}
	}
}

func (fr *fzFrameReader) checkResponse(data []byte) {
	t := fr.t
	switch string(data) {
	case "OK", "_heartbeat_", "CLOSE_WAIT":
		return
	}
	var obj map[string]interface{}
	if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &obj) != nil {
		t.Fatalf("response frame is neither OK, _heartbeat_, CLOSE_WAIT nor a JSON object: %q", data)
	}
	if _, isIdentify := obj["max_rdy_count"]; !isIdentify {
		return // an AUTH answer
	}
	deflate, _ := obj["deflate"].(bool)
	snappyOn, _ := obj["snappy"].(bool)
	if deflate && snappyOn {
		t.Fatalf("IDENTIFY granted deflate and snappy: %s", data)
	}
	if (deflate || snappyOn) && fr.compressed {
		t.Fatalf("IDENTIFY granted a second compression: %s", data)
	}
	switch {
	case snappyOn:
		fr.cur = snappy.NewReader(fr.cur)
		fr.compressed = true
	case deflate:
		fr.cur = flate.NewReader(fr.cur)
		fr.compressed = true
	}
}

var fzHexID = regexp.MustCompile(`^[0-9a-f]{16}$`)

// fzCheckWireMessage checks a message frame's data (D-TCP-45).
func fzCheckWireMessage(t testing.TB, data []byte, maxMsgSize int) *Message {
	t.Helper()
	m, err := decodeWireMessage(data)
	if err != nil {
		t.Fatalf("message frame: %v", err)
	}
	if !fzHexID.Match(m.ID[:]) {
		t.Fatalf("message ID %q is not 16 hex digits", m.ID[:])
	}
	if m.Attempts < 1 {
		t.Fatalf("message %s delivered with attempts %d", m.ID[:], m.Attempts)
	}
	if len(m.Body) == 0 || len(m.Body) > maxMsgSize {
		t.Fatalf("message %s body of %d bytes (max %d)", m.ID[:], len(m.Body), maxMsgSize)
	}
	return m
}

// fzDial opens a V2 connection (magic sent) with an overall deadline.
func fzDial(t testing.TB, n *NSQD) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", n.RealTCPAddr().String(), fzIOTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetDeadline(time.Now().Add(fzIOTimeout))
	return c.(*net.TCPConn)
}

// fzExchange writes "  V2"+input, half-closes, and reads and checks every
// frame until nsqd closes.
func fzExchange(t testing.TB, n *NSQD, input []byte) *fzFrameReader {
	t.Helper()
	conn := fzDial(t, n)
	defer conn.Close()
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		// a write error means nsqd closed first (fatal error): fine
		conn.Write(append([]byte("  V2"), input...))
		conn.CloseWrite()
	}()
	fr := newFzFrameReader(t, conn, int(n.getOpts().MaxMsgSize))
	fr.all()
	conn.Close()
	<-wdone
	return fr
}

// fzPUBCommand encodes PUB.
func fzPUBCommand(topic string, body []byte) []byte {
	b := []byte("PUB " + topic + "\n")
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// fzProbe: a fresh connection can still publish (the daemon is up and
// its topic machinery not wedged).
func fzProbe(t testing.TB, n *NSQD) {
	t.Helper()
	conn := fzDial(t, n)
	defer conn.Close()
	if _, err := conn.Write(append([]byte("  V2"), fzPUBCommand(fzProbeTopic, []byte("probe"))...)); err != nil {
		t.Fatalf("probe: write: %v", err)
	}
	fr := newFzFrameReader(t, conn, int(n.getOpts().MaxMsgSize))
	f, ok := fr.next()
	if !ok || f.typ != frameTypeResponse || string(f.data) != "OK" {
		t.Fatalf("probe PUB: got %v (ok %v), want OK", f, ok)
	}
}

// fzSettle waits until every connection handler has exited (none may
// outlive its client), then trims the topics the inputs created.
func fzSettle(t testing.TB, n *NSQD) {
	t.Helper()
	deadline := time.Now().Add(fzIOTimeout)
	for {
		n.tcpServer.mu.Lock()
		open := len(n.tcpServer.conns)
		n.tcpServer.mu.Unlock()
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connection handler(s) still running %s after their client left", open, fzIOTimeout)
		}
		time.Sleep(50 * time.Microsecond)
	}
	fzTrimTopics(n)
}

// fzTrimTopics deletes every topic once there are too many.
func fzTrimTopics(n *NSQD) {
	n.RLock()
	count := len(n.topicMap)
	names := make([]string, 0, count)
	for name := range n.topicMap {
		names = append(names, name)
	}
	n.RUnlock()
	if count <= fzMaxTopics {
		return
	}
	for _, name := range names {
		n.DeleteExistingTopic(name)
	}
}

// FuzzV2Stream: arbitrary bytes after the "  V2" magic, through the real
// connection handling. Every command form is in the seeds.
func FuzzV2Stream(f *testing.F) {
	n := fzStartNSQD(f, nil)
	f.Fuzz(func(t *testing.T, input []byte) {
		fzExchange(t, n, input)
		fzProbe(t, n)
		fzSettle(t, n)
	})
}

// fzIdentifyCommand encodes IDENTIFY with body.
func fzIdentifyCommand(body []byte) []byte {
	b := []byte("IDENTIFY\n")
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// fzIdentifyExpect is what a valid IDENTIFY body must lead to, decided from
// the spec's ranges (D-TCP-13..18); "" when nsqd must accept it.
func fzIdentifyExpect(opts *Options, body []byte) (d identifyData, refusal string) {
	if len(body) == 0 || int64(len(body)) > opts.MaxBodySize {
		return d, "E_BAD_BODY"
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return d, "E_BAD_BODY"
	}
	ms := func(v time.Duration) int { return int(v / time.Millisecond) }
	hb, obt, obs := d.HeartbeatInterval, d.OutputBufferTimeout, d.OutputBufferSize
	switch {
	case hb != -1 && hb != 0 && (hb < 1000 || hb > ms(opts.MaxHeartbeatInterval)),
		obt != -1 && obt != 0 && (obt < ms(opts.MinOutputBufferTimeout) || obt > ms(opts.MaxOutputBufferTimeout)),
		obs != -1 && obs != 0 && (obs < 64 || obs > int(opts.MaxOutputBufferSize)),
		d.SampleRate < 0 || d.SampleRate > 99,
		d.MsgTimeout != 0 && (d.MsgTimeout < 1000 || d.MsgTimeout > ms(opts.MaxMsgTimeout)):
		return d, "E_BAD_BODY"
	}
	if d.FeatureNegotiation && d.Deflate && opts.DeflateEnabled && d.Snappy && opts.SnappyEnabled {
		return d, "E_IDENTIFY_FAILED"
	}
	return d, ""
}

// FuzzIdentify: an arbitrary IDENTIFY body. Beyond the stream oracles, the
// answer must match the body: refused exactly when a value is out of the
// spec's range, and a negotiated answer must echo what was granted. The
// client then publishes through whatever compression was granted.
func FuzzIdentify(f *testing.F) {
	n := fzStartNSQD(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		opts := n.getOpts()
		data, refusal := fzIdentifyExpect(opts, body)

		conn := fzDial(t, n)
		defer conn.Close()
		if _, err := conn.Write(append([]byte("  V2"), fzIdentifyCommand(body)...)); err != nil {
			t.Fatalf("write: %v", err)
		}
		fr := newFzFrameReader(t, conn, int(opts.MaxMsgSize))
		first, ok := fr.next()
		if !ok {
			if refusal != "" && fr.reset {
				// refused with the body unread: the reset may eat the error
				fzSettle(t, n)
				return
			}
			t.Fatalf("no answer to IDENTIFY (want %q)", refusal)
		}
		if refusal != "" {
			if first.typ != frameTypeError || !bytes.HasPrefix(first.data, []byte(refusal+" ")) {
				t.Fatalf("IDENTIFY %q: got %v, want error %s", body, first, refusal)
			}
			if _, more := fr.next(); more {
				t.Fatalf("frame after IDENTIFY refusal")
			}
			fzSettle(t, n)
			return
		}
		if first.typ != frameTypeResponse {
			t.Fatalf("IDENTIFY %q: got %v, want a response", body, first)
		}
		if !data.FeatureNegotiation {
			if string(first.data) != "OK" {
				t.Fatalf("IDENTIFY without feature_negotiation: got %v, want OK", first)
			}
		} else {
			fzCheckIdentifyResponse(t, opts, data, first.data)
		}

		// publish through the negotiated stream
		var w io.Writer = conn
		var flush func() error
		switch {
		case fr.compressed && bytes.Contains(first.data, []byte(`"snappy":true`)):
			sw := snappy.NewBufferedWriter(conn)
			w, flush = sw, sw.Flush
		case fr.compressed:
			fw, _ := flate.NewWriter(conn, flate.DefaultCompression)
			w, flush = fw, fw.Flush
		}
		if fr.compressed {
			// the upgrade's OK comes through the new stream
			if ok, okFrame := fzNextIs(fr, "OK"); !ok {
				t.Fatalf("no OK after the compression upgrade: %v", okFrame)
			}
		}
		if _, err := w.Write(fzPUBCommand("fzidentify#ephemeral", []byte("after identify"))); err != nil {
			t.Fatalf("write PUB: %v", err)
		}
		if flush != nil {
			if err := flush(); err != nil {
				t.Fatalf("flush PUB: %v", err)
			}
		}
		if ok, got := fzNextIs(fr, "OK"); !ok {
			t.Fatalf("PUB after IDENTIFY %q: got %v, want OK", body, got)
		}
		conn.Close()
		fzSettle(t, n)
	})
}

// fzNextIs reads the next frame, skipping heartbeats, and reports whether
// it is the response want.
func fzNextIs(fr *fzFrameReader, want string) (bool, fzFrame) {
	for {
		f, ok := fr.next()
		if !ok {
			return false, f
		}
		if f.typ == frameTypeResponse && string(f.data) == "_heartbeat_" {
			continue
		}
		return f.typ == frameTypeResponse && string(f.data) == want, f
	}
}

// fzCheckIdentifyResponse checks the negotiated answer against the request.
func fzCheckIdentifyResponse(t *testing.T, opts *Options, d identifyData, data []byte) {
	t.Helper()
	var r identifyResponse
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("IDENTIFY response %q: %v", data, err)
	}
	ms := func(v time.Duration) int64 { return int64(v / time.Millisecond) }
	wantMsgTimeout := ms(opts.MsgTimeout)
	if d.MsgTimeout != 0 {
		wantMsgTimeout = int64(d.MsgTimeout)
	}
	wantBufSize := defaultBufferSize
	switch d.OutputBufferSize {
	case -1:
		wantBufSize = 1
	case 0:
	default:
		wantBufSize = d.OutputBufferSize
	}
	wantBufTimeout := ms(opts.OutputBufferTimeout)
	switch {
	case d.OutputBufferSize == -1 || d.OutputBufferTimeout == -1:
		wantBufTimeout = 0
	case d.OutputBufferTimeout != 0:
		wantBufTimeout = int64(d.OutputBufferTimeout)
	}
	wantDeflate := d.Deflate && opts.DeflateEnabled
	wantLevel := 6
	if wantDeflate && d.DeflateLevel > 0 {
		wantLevel = d.DeflateLevel
	}
	wantLevel = min(wantLevel, opts.MaxDeflateLevel)
	switch {
	case r.MsgTimeout != wantMsgTimeout,
		r.SampleRate != d.SampleRate,
		r.OutputBufferSize != wantBufSize,
		r.OutputBufferTimeout != wantBufTimeout,
		r.Deflate != wantDeflate,
		r.Snappy != (d.Snappy && opts.SnappyEnabled),
		r.DeflateLevel != wantLevel,
		r.TLSv1, // no TLS configured
		r.MaxRdyCount != opts.MaxRdyCount,
		r.AuthRequired != (len(opts.AuthHTTPAddresses) > 0):
		t.Fatalf("IDENTIFY %+v answered %s", d, data)
	}
}

// fzAuthServer is an auth server whose answer the fuzz input decides.
type fzAuthServer struct {
	*httptest.Server
	mu      sync.Mutex
	status  int
	answer  []byte
	secrets []string
}

func newFzAuthServer(f *testing.F) *fzAuthServer {
	s := &fzAuthServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.secrets = append(s.secrets, r.URL.Query().Get("secret"))
		status, answer := s.status, s.answer
		s.mu.Unlock()
		w.WriteHeader(status)
		w.Write(answer)
	}))
	f.Cleanup(s.Close)
	return s
}

func (s *fzAuthServer) set(status int, answer []byte) {
	s.mu.Lock()
	s.status, s.answer, s.secrets = status, answer, nil
	s.mu.Unlock()
}

func (s *fzAuthServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.secrets...)
}

// FuzzAuth: AUTH with an arbitrary secret against an auth server giving an
// arbitrary answer, then PUB. The oracle is internal/auth itself, asked the
// same question: nsqd must fail exactly when the answer is invalid, report
// the identity and permission count, pass the secret unchanged, and enforce
// the permissions the answer grants.
func FuzzAuth(f *testing.F) {
	as := newFzAuthServer(f)
	n := fzStartNSQD(f, func(o *Options) {
		o.AuthHTTPAddresses = []string{as.Listener.Addr().String()}
	})
	const topic = "fzauth#ephemeral"
	f.Fuzz(func(t *testing.T, secret []byte, status uint16, answer []byte) {
		st := 200
		if status%4 == 3 { // mostly 200; sometimes another status
			st = 200 + int(status/4)%400
			if st == 403 {
				// a 403 makes nsqd retry on the https_port the answer
				// names, which could be anything listening on this host;
				// internal/auth's FuzzAuthResponse covers that path
				st = 404
			}
		}
		as.set(st, answer)
		opts := n.getOpts()

		// the reference answer (ask the fake server once ourselves)
		var want *auth.State
		var wantErr error
		validSecret := len(secret) > 0 && int64(len(secret)) <= opts.MaxBodySize
		if validSecret {
			want, wantErr = auth.QueryOne(t.Context(), http.DefaultClient, opts.AuthHTTPAddresses[0],
				opts.AuthHTTPRequestMethod, auth.Request{Secret: string(secret), RemoteIP: "127.0.0.1"})
			as.set(st, answer)
		}

		input := []byte("AUTH\n")
		input = binary.BigEndian.AppendUint32(input, uint32(len(secret)))
		input = append(input, secret...)
		input = append(input, fzPUBCommand(topic, []byte("authorized?"))...)
		fr := fzExchange(t, n, input)
		frames := fr.frames

		var wantFrames []string
		switch {
		case !validSecret:
			wantFrames = []string{"E_BAD_BODY"}
		case wantErr != nil:
			wantFrames = []string{"E_AUTH_FAILED"}
		case len(want.Authorizations) == 0:
			wantFrames = []string{"E_UNAUTHORIZED"}
		default:
			resp, _ := json.Marshal(authResponse{want.Identity, want.IdentityURL, len(want.Authorizations)})
			if want.IsAllowed(topic, "") {
				wantFrames = []string{string(resp), "OK"}
			} else {
				wantFrames = []string{string(resp), "E_UNAUTHORIZED"}
			}
		}
		// a reset may swallow the tail; what arrived must match
		if len(frames) > len(wantFrames) {
			t.Fatalf("frames %v, want %v", frames, wantFrames)
		}
		for i, f := range frames {
			w := wantFrames[i]
			if f.typ == frameTypeError {
				if !bytes.HasPrefix(append(f.data, ' '), []byte(w+" ")) {
					t.Fatalf("frame %d: %v, want %s (all %v)", i, f, w, frames)
				}
			} else if string(f.data) != w {
				t.Fatalf("frame %d: %v, want %s (all %v)", i, f, w, frames)
			}
		}
		if validSecret {
			for _, s := range as.seen() {
				if s != string(secret) {
					t.Fatalf("auth server got secret %q, client sent %q", s, secret)
				}
			}
		}
		fzSettle(t, n)
	})
}

// ---- seeds ----

// fzSeed is one seed corpus entry; args are the fuzz function's arguments.
type fzSeed struct {
	name string
	args []interface{}
}

// fzWriteSeeds writes seeds in the `go test fuzz v1` format under
// testdata/fuzz/<target>.
func fzWriteSeeds(t *testing.T, target string, seeds []fzSeed) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range seeds {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, a := range s.args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
			case string:
				fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			case uint8:
				fmt.Fprintf(&b, "byte(%q)\n", v)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", v)
			case int64:
				fmt.Fprintf(&b, "int64(%d)\n", v)
			case uint64:
				fmt.Fprintf(&b, "uint64(%d)\n", v)
			default:
				t.Fatalf("seed %s: unsupported type %T", s.name, a)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fzBytes(parts ...interface{}) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		case int:
			b = binary.BigEndian.AppendUint32(b, uint32(int32(v)))
		case int32:
			b = binary.BigEndian.AppendUint32(b, uint32(v))
		}
	}
	return b
}

func fzMPUBCommand(topic string, bodies ...string) []byte {
	var inner []byte
	inner = binary.BigEndian.AppendUint32(inner, uint32(len(bodies)))
	for _, body := range bodies {
		inner = binary.BigEndian.AppendUint32(inner, uint32(len(body)))
		inner = append(inner, body...)
	}
	return fzBytes("MPUB "+topic+"\n", len(inner), inner)
}

const fzSeedID = "0123456789abcdef"

func fzV2Seeds() []fzSeed {
	id := `{"client_id":"fz","hostname":"h","feature_negotiation":true,"heartbeat_interval":1000,"user_agent":"fuzz/1"}`
	s := func(name string, parts ...interface{}) fzSeed { return fzSeed{name, []interface{}{fzBytes(parts...)}} }
	return []fzSeed{
		s("empty"),
		s("nop", "NOP\n"),
		s("nop-crlf", "NOP\r\nNOP\n"),
		s("invalid-command", "FOO bar\n"),
		s("no-newline", "PUB t"),
		s("pub", fzPUBCommand("t", []byte("hello"))),
		s("pub-ephemeral", fzPUBCommand("t#ephemeral", []byte("x"))),
		s("pub-bad-topic", fzPUBCommand("bad!topic", []byte("x"))),
		s("pub-no-topic", "PUB\n"),
		s("pub-zero-size", "PUB t\n", 0),
		s("pub-negative-size", "PUB t\n", -1),
		s("pub-huge-size", "PUB t\n", 0x7fffffff),
		s("pub-too-big", "PUB t\n", fzMaxMsgSize+1),
		s("pub-short-body", "PUB t\n", 10, "abc"),
		s("mpub", fzMPUBCommand("t", "a", "bb", "ccc")),
		s("mpub-zero-count", "MPUB t\n", 4, 0),
		s("mpub-negative-count", "MPUB t\n", 8, -5, 1),
		s("mpub-huge-count", "MPUB t\n", 8, 0x7fffffff, 1),
		s("mpub-huge-body", "MPUB t\n", 0x7fffffff, 1, 1, "x"),
		s("mpub-member-too-big", "MPUB t\n", 100, 1, fzMaxMsgSize+1),
		s("mpub-members-over-body", fzMPUBCommand("t", string(bytes.Repeat([]byte("m"), 1000)),
			string(bytes.Repeat([]byte("m"), 1000)), string(bytes.Repeat([]byte("m"), 1000)),
			string(bytes.Repeat([]byte("m"), 1000)), string(bytes.Repeat([]byte("m"), 1000)))),
		s("mpub-outer-size-lies", "MPUB t\n", 100, 5, 1000, bytes.Repeat([]byte("m"), 1000), 1000, bytes.Repeat([]byte("m"), 1000),
			1000, bytes.Repeat([]byte("m"), 1000), 1000, bytes.Repeat([]byte("m"), 1000), 1000, bytes.Repeat([]byte("m"), 1000)),
		s("mpub-member-negative", "MPUB t\n", 12, 1, -1, "x"),
		s("dpub", "DPUB t 1000\n", 3, "def"),
		s("dpub-bad-timeout", "DPUB t abc\n", 1, "x"),
		s("dpub-timeout-too-big", "DPUB t 99999999999\n", 1, "x"),
		s("dpub-missing", "DPUB t\n"),
		s("identify", fzIdentifyCommand([]byte(id)), "NOP\n"),
		s("identify-plain", fzIdentifyCommand([]byte(`{"client_id":"a"}`)), fzPUBCommand("t", []byte("x"))),
		s("identify-bad-json", fzIdentifyCommand([]byte(`{"heartbeat_interval":`))),
		s("identify-huge", "IDENTIFY\n", 0x7fffffff),
		s("identify-negative", "IDENTIFY\n", -3),
		s("identify-deflate", fzIdentifyCommand([]byte(`{"feature_negotiation":true,"deflate":true,"deflate_level":3}`)), "NOP\n"),
		s("identify-snappy", fzIdentifyCommand([]byte(`{"feature_negotiation":true,"snappy":true}`)), "NOP\n"),
		s("identify-both", fzIdentifyCommand([]byte(`{"feature_negotiation":true,"snappy":true,"deflate":true}`))),
		s("identify-twice", fzIdentifyCommand([]byte(`{"feature_negotiation":true}`)), fzIdentifyCommand([]byte(`{"feature_negotiation":true}`))),
		s("identify-no-heartbeat-sub", fzIdentifyCommand([]byte(`{"heartbeat_interval":-1}`)), "SUB t c\n"),
		s("auth", fzBytes("AUTH\n", 6, "secret")),
		s("auth-params", fzBytes("AUTH x\n", 6, "secret")),
		s("auth-huge", "AUTH\n", 0x7fffffff),
		s("sub-rdy-fin", fzPUBCommand("t", []byte("m")), "SUB t c\nRDY 10\nFIN "+fzSeedID+"\n"),
		s("sub-rdy-req-touch", fzPUBCommand("t", []byte("m")), "SUB t c\nRDY 1\nTOUCH "+fzSeedID+"\nREQ "+fzSeedID+" 0\n"),
		s("sub-ephemeral", fzPUBCommand("e#ephemeral", []byte("m")), "SUB e#ephemeral c#ephemeral\nRDY 5\nCLS\n"),
		s("sub-bad-channel", "SUB t bad!chan\n"),
		s("sub-twice", "SUB t c\nSUB t c\n"),
		s("rdy-before-sub", "RDY 1\n"),
		s("rdy-out-of-range", "SUB t c\nRDY 999999\n"),
		s("rdy-negative", "SUB t c\nRDY -1\n"),
		s("fin-bad-id", "SUB t c\nFIN 123\n"),
		s("fin-unknown-id", "SUB t c\nFIN "+fzSeedID+"\nREQ "+fzSeedID+" 10\nTOUCH "+fzSeedID+"\nNOP\n"),
		s("req-huge-timeout", "SUB t c\nREQ "+fzSeedID+" 99999999999999\n"),
		s("cls-before-sub", "CLS\n"),
		s("cls-then-rdy", "SUB t c\nCLS\nRDY 1\n"),
		s("long-line", bytes.Repeat([]byte("A"), 20000)),
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("NSQ_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set NSQ_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	fzWriteSeeds(t, "FuzzV2Stream", fzV2Seeds())
	fzWriteSeeds(t, "FuzzIdentify", fzIdentifySeeds())
	fzWriteSeeds(t, "FuzzAuth", fzAuthSeeds())
	fzWriteSeeds(t, "FuzzHTTPAPI", fzHTTPSeeds())
	fzWriteSeeds(t, "FuzzMPUBBody", fzMPUBBodySeeds())
	fzWriteSeeds(t, "FuzzDecodeDiskMessage", fzDiskSeeds())
	fzWriteSeeds(t, "FuzzLookupPeer", fzLookupPeerSeeds())
}

func fzIdentifySeeds() []fzSeed {
	s := func(name, body string) fzSeed { return fzSeed{name, []interface{}{[]byte(body)}} }
	return []fzSeed{
		s("empty-object", `{}`),
		s("empty", ``),
		s("not-json", `hello`),
		s("array", `[1,2,3]`),
		s("null", `null`),
		s("plain", `{"client_id":"c","hostname":"h","user_agent":"ua"}`),
		s("negotiate", `{"feature_negotiation":true}`),
		s("all-fields", `{"client_id":"c","hostname":"h","heartbeat_interval":30000,"output_buffer_size":16384,"output_buffer_timeout":250,"feature_negotiation":true,"tls_v1":false,"deflate":false,"deflate_level":0,"snappy":false,"sample_rate":10,"user_agent":"go-nsq/1.1.0","msg_timeout":60000,"topology_region":"r","topology_zone":"z"}`),
		s("heartbeat-disabled", `{"heartbeat_interval":-1,"feature_negotiation":true}`),
		s("heartbeat-too-small", `{"heartbeat_interval":999}`),
		s("heartbeat-too-big", `{"heartbeat_interval":60001}`),
		s("buffer-unbuffered", `{"output_buffer_size":-1,"feature_negotiation":true}`),
		s("buffer-too-small", `{"output_buffer_size":63}`),
		s("buffer-too-big", `{"output_buffer_size":65537}`),
		s("buffer-timeout-disabled", `{"output_buffer_timeout":-1,"feature_negotiation":true}`),
		s("buffer-timeout-too-small", `{"output_buffer_timeout":24}`),
		s("sample-rate-100", `{"sample_rate":100}`),
		s("sample-rate-negative", `{"sample_rate":-1}`),
		s("msg-timeout-too-small", `{"msg_timeout":999}`),
		s("msg-timeout-max", `{"msg_timeout":900000,"feature_negotiation":true}`),
		s("deflate", `{"feature_negotiation":true,"deflate":true,"deflate_level":9}`),
		s("deflate-negative-level", `{"feature_negotiation":true,"deflate":true,"deflate_level":-7}`),
		s("snappy", `{"feature_negotiation":true,"snappy":true}`),
		s("both", `{"feature_negotiation":true,"snappy":true,"deflate":true}`),
		s("tls", `{"feature_negotiation":true,"tls_v1":true}`),
		s("wrong-types", `{"heartbeat_interval":"1000","sample_rate":1.5}`),
		s("overflow", `{"heartbeat_interval":99999999999999999999}`),
		s("int32-overflow", `{"sample_rate":4294967296}`),
		s("unknown-keys", `{"x":{"y":[1,2,{"z":null}]},"feature_negotiation":true}`),
		s("duplicate-keys", `{"msg_timeout":1000,"msg_timeout":0}`),
		s("unicode", `{"client_id":"\u00e9\ud83d\ude00","hostname":"\xff\xfe"}`),
		s("too-big", string(bytes.Repeat([]byte(" "), fzMaxBodySize+1))),
	}
}

func fzAuthSeeds() []fzSeed {
	s := func(name, secret string, status uint16, answer string) fzSeed {
		return fzSeed{name, []interface{}{[]byte(secret), status, []byte(answer)}}
	}
	return []fzSeed{
		s("allowed", "secret", 0, `{"ttl":3600,"identity":"id","identity_url":"http://x","authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe","publish"]}]}`),
		s("subscribe-only", "s", 0, `{"ttl":60,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe"]}]}`),
		s("no-channels", "s", 0, `{"ttl":60,"authorizations":[{"topic":".*","channels":[],"permissions":["publish"]}]}`),
		s("other-topic", "s", 0, `{"ttl":60,"authorizations":[{"topic":"^other$","channels":[".*"],"permissions":["publish"]}]}`),
		s("none", "s", 0, `{"ttl":60,"authorizations":[]}`),
		s("zero-ttl", "s", 0, `{"ttl":0,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}`),
		s("bad-permission", "s", 0, `{"ttl":60,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["admin"]}]}`),
		s("bad-regex", "s", 0, `{"ttl":60,"authorizations":[{"topic":"(","channels":[".*"],"permissions":["publish"]}]}`),
		s("not-json", "s", 0, `<html>`),
		s("status-500", "s", 1203, `{"ttl":60}`),
		s("status-404", "s", 819, `{"ttl":60}`),
		s("empty-secret", "", 0, `{}`),
		s("binary-secret", "\x00\xff&=?#%", 0, `{"ttl":1,"authorizations":[{"topic":"fz","channels":[""],"permissions":["publish"]}]}`),
		s("too-big-secret", string(bytes.Repeat([]byte("s"), fzMaxBodySize+1)), 0, `{}`),
	}
}
