package nsqd

// Fuzz targets for nsqd's HTTP input (robustness issue, part 1): the
// /mpub body decoders against a reference parser, and the publish/admin
// routes with arbitrary query strings and bodies. Plus the bounds-before-
// allocation regression tests for every length nsqd reads from the wire.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
)

// fzRefBinaryMPUB is a reference decoder for [int32 count]([int32 size]
// [body])* with nsqd's limits (D-TCP-42, D-HTTP-16): the count must be
// 1..(maxBody-4)/5, each size 1..maxMsg, the sizes together at most maxBody.
// It returns the bodies or the error code nsqd must give.
func fzRefBinaryMPUB(b []byte, maxMsg, maxBody int64) ([][]byte, string) {
	if len(b) < 4 {
		return nil, "E_BAD_BODY"
	}
	num := int32(binary.BigEndian.Uint32(b))
	b = b[4:]
	if num <= 0 || int64(num) > (maxBody-4)/5 {
		return nil, "E_BAD_BODY"
	}
	var bodies [][]byte
	var total int64
	for i := int32(0); i < num; i++ {
		if len(b) < 4 {
			return nil, "E_BAD_MESSAGE"
		}
		size := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if size <= 0 || int64(size) > maxMsg {
			return nil, "E_BAD_MESSAGE"
		}
		if total += int64(size); total > maxBody {
			return nil, "E_BAD_BODY"
		}
		if int64(len(b)) < int64(size) {
			return nil, "E_BAD_MESSAGE"
		}
		bodies = append(bodies, b[:size])
		b = b[size:]
	}
	return bodies, ""
}

// fzRefTextMPUB is a reference decoder for the text /mpub body (D-HTTP-15):
// lines split on '\n' ('\r' kept), empty lines skipped; the body at most
// maxBody bytes (BODY_TOO_BIG), each line at most maxMsg (MSG_TOO_BIG),
// whichever the reader meets first.
func fzRefTextMPUB(b []byte, maxMsg, maxBody int64) ([][]byte, string) {
	var bodies [][]byte
	var total int64
	for len(b) > 0 {
		line, rest, found := bytes.Cut(b, []byte("\n"))
		total += int64(len(line))
		if found {
			total++
		}
		if total > maxBody {
			return nil, "BODY_TOO_BIG"
		}
		if int64(len(line)) > maxMsg {
			return nil, "MSG_TOO_BIG"
		}
		if len(line) > 0 {
			bodies = append(bodies, line)
		}
		b = rest
	}
	return bodies, ""
}

// fzCheckBodies compares decoded messages with the reference and checks the
// limits on their own.
func fzCheckBodies(t *testing.T, msgs []*Message, want [][]byte, maxMsg, maxBody int64) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, reference decoded %d", len(msgs), len(want))
	}
	var total int64
	for i, m := range msgs {
		if !bytes.Equal(m.Body, want[i]) {
			t.Fatalf("message %d body %q, reference %q", i, m.Body, want[i])
		}
		if len(m.Body) == 0 || int64(len(m.Body)) > maxMsg {
			t.Fatalf("message %d of %d bytes accepted (max %d)", i, len(m.Body), maxMsg)
		}
		total += int64(len(m.Body))
	}
	if total > maxBody {
		t.Fatalf("bodies total %d bytes accepted (max body %d)", total, maxBody)
	}
}

// FuzzMPUBBody: readMPUB (TCP MPUB and /mpub?binary=true) and readTextMPUB
// (/mpub) on arbitrary bodies and limits, against the reference decoders.
func FuzzMPUBBody(f *testing.F) {
	n := fzStartNSQD(f, nil)
	topic := n.GetTopic("fzmpub#ephemeral")
	f.Fuzz(func(t *testing.T, binaryMode bool, maxMsg16, maxBody16 uint16, body []byte) {
		maxMsg := 1 + int64(maxMsg16)%2048
		maxBody := 1 + int64(maxBody16)%8192
		if binaryMode {
			want, wantCode := fzRefBinaryMPUB(body, maxMsg, maxBody)
			msgs, cerr := readMPUB(bufio.NewReader(bytes.NewReader(body)), topic, maxMsg, maxBody)
			if cerr != nil {
				if wantCode != cerr.Code {
					t.Fatalf("readMPUB: %s, reference %q", cerr, wantCode)
				}
				if !cerr.Fatal {
					t.Fatalf("readMPUB error %s is not fatal", cerr)
				}
				return
			}
			if wantCode != "" {
				t.Fatalf("readMPUB accepted %d messages, reference refuses with %s", len(msgs), wantCode)
			}
			fzCheckBodies(t, msgs, want, maxMsg, maxBody)
			return
		}
		want, wantCode := fzRefTextMPUB(body, maxMsg, maxBody)
		msgs, err := readTextMPUB(bytes.NewReader(body), topic, maxMsg, maxBody)
		if err != nil {
			if wantCode == "" || err.Error() != wantCode {
				t.Fatalf("readTextMPUB: %v, reference %q", err, wantCode)
			}
			return
		}
		if wantCode != "" {
			t.Fatalf("readTextMPUB accepted %d messages, reference refuses with %s", len(msgs), wantCode)
		}
		fzCheckBodies(t, msgs, want, maxMsg, maxBody)
	})
}

// fzHTTPRoutes are the routes FuzzHTTPAPI drives. Left out on purpose:
// PUT /config/nsqlookupd_tcp_addresses (it would make nsqd dial whatever
// the input names), /debug/* (process-wide profiling settings, a 30 s CPU
// profile).
var fzHTTPRoutes = []struct{ method, path string }{
	{"POST", "/pub"},
	{"POST", "/mpub"},
	{"GET", "/stats"},
	{"POST", "/topic/create"},
	{"POST", "/topic/delete"},
	{"POST", "/topic/empty"},
	{"POST", "/topic/pause"},
	{"POST", "/topic/unpause"},
	{"POST", "/channel/create"},
	{"POST", "/channel/delete"},
	{"POST", "/channel/empty"},
	{"POST", "/channel/pause"},
	{"POST", "/channel/unpause"},
	{"GET", "/config/"}, // + an option name from the body
	{"PUT", "/config/log_level"},
	{"GET", "/info"},
	{"GET", "/ping"},
	{"GET", "/pub"}, // wrong method
}

// FuzzHTTPAPI: a route (sel), an arbitrary query string and body, with a
// known or unknown (-1) Content-Length. nsqd must answer with a status a
// client can act on (never 500: a handler panic is turned into 500), a JSON
// body on V1 routes, and publish exactly what the reference decoders say.
func FuzzHTTPAPI(f *testing.F) {
	n := fzStartNSQD(f, nil)
	h := newHTTPServer(n)
	logLevel := n.getOpts().LogLevel
	f.Fuzz(func(t *testing.T, sel uint16, query string, body []byte) {
		route := fzHTTPRoutes[int(sel&0xff)%len(fzHTTPRoutes)]
		path := route.path
		if path == "/config/" {
			path += string(body)
		}
		req := &http.Request{
			Method:        route.method,
			URL:           &url.URL{Path: path, RawQuery: query},
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			RemoteAddr:    "127.0.0.1:1",
			Proto:         "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}
		if sel&0x100 != 0 {
			req.ContentLength = -1 // chunked: only the reader's limits apply
		}
		opts := n.getOpts()
		params, perr := url.ParseQuery(query)
		topicName := params.Get("topic")
		before := uint64(0)
		if tp, err := n.GetExistingTopic(topicName); err == nil {
			before = tp.MessageCount()
		}

		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)

		code := w.Code
		switch {
		case code == 200, code == 400, code == 404, code == 405, code == 413:
		case code >= 300 && code < 400 && route.path == "/config/":
			// httprouter's path-fixing redirects for a fuzzed path
		default:
			t.Fatalf("%s %s?%s: status %d %q", route.method, path, query, code, w.Body.Bytes())
		}
		if ct := w.Header().Get("Content-Type"); strings.HasPrefix(ct, "application/json") && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: invalid JSON body %q", route.method, path, w.Body.Bytes())
		}

		published := uint64(0)
		if tp, err := n.GetExistingTopic(topicName); err == nil {
			published = tp.MessageCount() - before
		}
		switch {
		case route.path == "/pub" && route.method == "POST":
			switch {
			case code == 200:
				if len(body) == 0 || int64(len(body)) > opts.MaxMsgSize || published != 1 {
					t.Fatalf("/pub of %d bytes: 200 with %d published", len(body), published)
				}
			case code == 413:
				if int64(len(body)) <= opts.MaxMsgSize {
					t.Fatalf("/pub of %d bytes: 413", len(body))
				}
			}
		case route.path == "/mpub":
			if code != 200 {
				if published != 0 {
					t.Fatalf("/mpub: %d with %d published", code, published)
				}
				break
			}
			if perr != nil {
				t.Fatalf("/mpub with malformed query %q: 200", query)
			}
			var want [][]byte
			var wantCode string
			if b, ok := params["binary"]; ok && len(b) > 0 && b[0] != "false" && b[0] != "0" {
				want, wantCode = fzRefBinaryMPUB(body, opts.MaxMsgSize, opts.MaxBodySize)
			} else {
				want, wantCode = fzRefTextMPUB(body, opts.MaxMsgSize, opts.MaxBodySize)
			}
			if wantCode != "" || uint64(len(want)) != published {
				t.Fatalf("/mpub: 200 with %d published, reference %d (%q)", published, len(want), wantCode)
			}
		case route.path == "/config/log_level":
			n.swapOpts(func(o *Options) { o.LogLevel = logLevel })
			n.logLevel.Store(logLevel)
		}
		fzTrimTopics(n)
	})
}

// ---- bounds before allocation ----

// fzAllocDuring returns how many bytes the process allocated while fn ran.
func fzAllocDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestWireLengthsCheckedBeforeAllocation: every length a V2 client sends is
// checked before nsqd allocates for it (policy Q-10). Each case announces
// 2 GiB - 1 (or a count that large) and sends nothing more: nsqd must answer
// the error at once (it did not wait to read the body) and the process must
// not have allocated anything near that size.
func TestWireLengthsCheckedBeforeAllocation(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.Logger, o.LogLevel = fzDiscardLogger{}, lg.INFO })
	const huge = 0x7fffffff
	cases := []struct {
		name  string
		input []byte
		want  string
	}{
		{"PUB size", fzBytes("PUB t\n", huge), "E_BAD_MESSAGE PUB message too big"},
		{"PUB negative size", fzBytes("PUB t\n", -1), "E_BAD_MESSAGE PUB invalid message body size -1"},
		{"DPUB size", fzBytes("DPUB t 0\n", huge), "E_BAD_MESSAGE DPUB message too big"},
		{"MPUB body size", fzBytes("MPUB t\n", huge), "E_BAD_BODY MPUB body too big"},
		{"MPUB count", fzBytes("MPUB t\n", 100, huge), "E_BAD_BODY MPUB invalid message count"},
		{"MPUB member size", fzBytes("MPUB t\n", 100, 2, huge), "E_BAD_MESSAGE MPUB message too big"},
		{"MPUB members over body", fzBytes("MPUB t\n", 100, 10, 1<<20, bytes.Repeat([]byte("x"), 1<<20),
			1<<20, bytes.Repeat([]byte("x"), 1<<20), 1<<20, bytes.Repeat([]byte("x"), 1<<20),
			1<<20, bytes.Repeat([]byte("x"), 1<<20), 1<<20, bytes.Repeat([]byte("x"), 1<<20),
			1<<20), "E_BAD_BODY MPUB body too big"},
		{"IDENTIFY size", fzBytes("IDENTIFY\n", huge), "E_BAD_BODY IDENTIFY body too big"},
		{"IDENTIFY negative size", fzBytes("IDENTIFY\n", -1), "E_BAD_BODY IDENTIFY invalid body size"},
		{"AUTH size", fzBytes("AUTH\n", huge), "E_BAD_BODY AUTH body too big"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got fzFrame
			alloc := fzAllocDuring(func() {
				conn := fzDial(t, n)
				defer conn.Close()
				conn.Write(append([]byte("  V2"), tc.input...))
				// no half-close: the answer must come without more input
				fr := newFzFrameReader(t, conn, int(n.getOpts().MaxMsgSize))
				got, _ = fr.next()
			})
			if got.typ != frameTypeError || !strings.HasPrefix(string(got.data), tc.want) {
				t.Fatalf("got %v, want error %q", got, tc.want)
			}
			// the MPUB-over-body case legitimately holds up to 5 MiB
			if alloc > 64<<20 {
				t.Fatalf("allocated %d bytes answering it", alloc)
			}
		})
	}
}

// TestReadMPUBAllocationBounded: readMPUB allocates in step with the bytes
// that actually arrive, whatever count and sizes are announced.
func TestReadMPUBAllocationBounded(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.Logger, o.LogLevel = fzDiscardLogger{}, lg.INFO })
	topic := n.GetTopic("alloc#ephemeral")
	const maxBody = 1 << 30 // a lax limit: the count alone may not be trusted
	input := fzBytes(int32(maxBody/5-1), 1<<20, "short")
	var cerr *protocol.ClientError
	alloc := fzAllocDuring(func() {
		_, cerr = readMPUB(bufio.NewReader(bytes.NewReader(input)), topic, 1<<20, maxBody)
	})
	if cerr == nil || cerr.Code != "E_BAD_MESSAGE" {
		t.Fatalf("got %v, want E_BAD_MESSAGE", cerr)
	}
	if alloc > 8<<20 {
		t.Fatalf("readMPUB allocated %d bytes for 13 bytes of input", alloc)
	}
}

// TestHTTPBodiesBounded: /pub, /mpub and PUT /config read at most their
// limit (+1) of a body of unknown length.
func TestHTTPBodiesBounded(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) {
		o.Logger, o.LogLevel = fzDiscardLogger{}, lg.INFO
		o.MaxMsgSize = 1 << 10
		o.MaxBodySize = 4 << 10
	})
	h := newHTTPServer(n)
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{"POST", "/pub?topic=t", 413},
		{"POST", "/mpub?topic=t", 413},
		{"POST", "/mpub?topic=t&binary=true", 413},
		{"PUT", "/config/log_level", 413},
	} {
		// an endless body: only a bounded reader can answer
		body := &fzCountingReader{r: fzEndless{}}
		req := httptest.NewRequest(tc.method, tc.target, body)
		req.ContentLength = -1
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, req)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %s: still reading an endless body", tc.method, tc.target)
		}
		if w.Code != tc.want {
			t.Fatalf("%s %s: %d %q, want %d", tc.method, tc.target, w.Code, w.Body.Bytes(), tc.want)
		}
		if body.n > 64<<10 {
			t.Fatalf("%s %s: read %d bytes of the body", tc.method, tc.target, body.n)
		}
	}
}

type fzEndless struct{}

// Read yields an endless binary-MPUB-shaped stream: count 1000, then
// members of 100 bytes.
func (fzEndless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	if len(p) >= 12 {
		binary.BigEndian.PutUint32(p[0:], 1000)
		binary.BigEndian.PutUint32(p[4:], 100)
		p[8] = 'x'
	}
	return len(p), nil
}

type fzCountingReader struct {
	r io.Reader
	n int
}

func (c *fzCountingReader) Read(p []byte) (int, error) {
	if c.n == 0 {
		n, err := c.r.Read(p)
		c.n += n
		return n, err
	}
	for i := range p {
		p[i] = 'a'
	}
	c.n += len(p)
	return len(p), nil
}

// ---- seeds ----

func fzMPUBBodySeeds() []fzSeed {
	bin := func(name string, maxMsg, maxBody uint16, parts ...interface{}) fzSeed {
		return fzSeed{name, []interface{}{true, maxMsg, maxBody, fzBytes(parts...)}}
	}
	text := func(name string, maxMsg, maxBody uint16, body string) fzSeed {
		return fzSeed{name, []interface{}{false, maxMsg, maxBody, []byte(body)}}
	}
	return []fzSeed{
		bin("one", 100, 1000, 1, 3, "abc"),
		bin("three", 100, 1000, 3, 1, "a", 2, "bb", 3, "ccc"),
		bin("trailing", 100, 1000, 1, 1, "a", "trailing bytes"),
		bin("zero-count", 100, 1000, 0),
		bin("negative-count", 100, 1000, -1),
		bin("huge-count", 100, 1000, 0x7fffffff, 1, "a"),
		bin("count-over-body", 100, 19, 4, 1, "a", 1, "b", 1, "c", 1, "d"),
		bin("member-zero", 100, 1000, 1, 0),
		bin("member-negative", 100, 1000, 1, -2, "xx"),
		bin("member-too-big", 9, 1000, 1, 10, "0123456789"),
		bin("members-over-body", 100, 24, 3, 10, "0123456789", 10, "0123456789", 10, "0123456789"),
		bin("short-member", 100, 1000, 2, 5, "abcde", 5, "ab"),
		bin("short-count", 100, 1000, "\x00\x00"),
		bin("empty", 100, 1000),
		text("lines", 100, 1000, "a\nbb\nccc"),
		text("trailing-newline", 100, 1000, "a\nb\n"),
		text("empty-lines", 100, 1000, "\n\n\na\n\n"),
		text("crlf", 100, 1000, "a\r\nb\r\n"),
		text("empty", 100, 1000, ""),
		text("line-too-long", 3, 1000, "abc\nabcd\n"),
		text("body-too-big", 100, 7, "abc\nabcd"),
		text("exact-body", 100, 8, "abc\nabcd"),
		text("both-too-big", 2, 3, "abcdef"),
	}
}

func fzHTTPSeeds() []fzSeed {
	route := func(method, path string) uint16 {
		for i, r := range fzHTTPRoutes {
			if r.method == method && r.path == path {
				return uint16(i)
			}
		}
		panic(path)
	}
	s := func(name string, sel uint16, query string, body []byte) fzSeed {
		return fzSeed{name, []interface{}{sel, query, body}}
	}
	return []fzSeed{
		s("pub", route("POST", "/pub"), "topic=t", []byte("hello")),
		s("pub-chunked", route("POST", "/pub")|0x100, "topic=t", []byte("hello")),
		s("pub-defer", route("POST", "/pub"), "topic=t&defer=1000", []byte("later")),
		s("pub-bad-defer", route("POST", "/pub"), "topic=t&defer=-1", []byte("x")),
		s("pub-empty", route("POST", "/pub"), "topic=t", nil),
		s("pub-too-big", route("POST", "/pub"), "topic=t", bytes.Repeat([]byte("x"), fzMaxMsgSize+1)),
		s("pub-no-topic", route("POST", "/pub"), "", []byte("x")),
		s("pub-bad-topic", route("POST", "/pub"), "topic=a%20b", []byte("x")),
		s("pub-bad-query", route("POST", "/pub"), "topic=%zz", []byte("x")),
		s("pub-semicolon", route("POST", "/pub"), "topic=t;x=y", []byte("x")),
		s("mpub-text", route("POST", "/mpub"), "topic=t", []byte("a\nb\n\nc")),
		s("mpub-binary", route("POST", "/mpub"), "topic=t&binary=true", fzBytes(2, 1, "a", 2, "bb")),
		s("mpub-binary-chunked", route("POST", "/mpub")|0x100, "topic=t&binary=1", fzBytes(2, 1, "a", 2, "bb")),
		s("mpub-binary-odd", route("POST", "/mpub"), "topic=t&binary=yes", fzBytes(1, 1, "a")),
		s("mpub-binary-huge-count", route("POST", "/mpub"), "topic=t&binary=true", fzBytes(0x7fffffff, 1, "a")),
		s("mpub-text-too-big", route("POST", "/mpub")|0x100, "topic=t", bytes.Repeat([]byte("x\n"), fzMaxBodySize)),
		s("stats", route("GET", "/stats"), "format=json&topic=t&channel=c&include_clients=false", nil),
		s("stats-text", route("GET", "/stats"), "include_mem=true", nil),
		s("topic-create", route("POST", "/topic/create"), "topic=t", nil),
		s("topic-delete", route("POST", "/topic/delete"), "topic=t", nil),
		s("topic-empty", route("POST", "/topic/empty"), "topic=t", nil),
		s("topic-pause", route("POST", "/topic/pause"), "topic=t", nil),
		s("topic-unpause", route("POST", "/topic/unpause"), "topic=t", nil),
		s("channel-create", route("POST", "/channel/create"), "topic=t&channel=c", nil),
		s("channel-delete", route("POST", "/channel/delete"), "topic=t&channel=c", nil),
		s("channel-empty", route("POST", "/channel/empty"), "topic=t&channel=c", nil),
		s("channel-pause", route("POST", "/channel/pause"), "topic=t&channel=c#ephemeral", nil),
		s("channel-unpause", route("POST", "/channel/unpause"), "topic=t&channel=c", nil),
		s("config-get", route("GET", "/config/"), "", []byte("max_msg_size")),
		s("config-get-unknown", route("GET", "/config/"), "", []byte("nope")),
		s("config-get-path", route("GET", "/config/"), "", []byte("../x/")),
		s("config-log-level", route("PUT", "/config/log_level"), "", []byte("debug")),
		s("config-log-level-bad", route("PUT", "/config/log_level"), "", []byte("loud")),
		s("config-log-level-empty", route("PUT", "/config/log_level"), "", nil),
		s("info", route("GET", "/info"), "", nil),
		s("ping", route("GET", "/ping"), "", nil),
		s("wrong-method", route("GET", "/pub"), "topic=t", nil),
	}
}
