package httpapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/ournsq/nsq/internal/lg"
)

// testFastRoute serves POST /fast: ?fail hands the request to net/http,
// ?err answers 500, ?block waits for release to close, anything else 200
// "OK". handled counts the fast answers.
type testFastRoute struct {
	handled atomic.Int64
	release chan struct{}
}

func (r *testFastRoute) MatchFast(path []byte, n int64) bool {
	return string(path) == "/fast" && n <= 1000
}

func (r *testFastRoute) ServeFast(path, query, body []byte) (int, string, bool) {
	switch string(query) {
	case "fail":
		return 0, "", false
	case "err":
		r.handled.Add(1)
		return 500, "INTERNAL_ERROR", true
	case "block":
		<-r.release
	}
	r.handled.Add(1)
	return 200, "OK", true
}

// testFastHandler is what net/http serves: the same answers as the route.
func testFastHandler() http.Handler {
	router := NewRouter(func(lvl lg.LogLevel, f string, args ...interface{}) {})
	router.Handle("POST", "/fast", Decorate(func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
		io.Copy(io.Discard, req.Body)
		if req.URL.RawQuery == "err" {
			return nil, Err{500, "INTERNAL_ERROR"}
		}
		return "OK", nil
	}, V1))
	router.Handle("GET", "/slow", Decorate(func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
		return "slow", nil
	}, V1))
	return router
}

// startFastServer serves testFastHandler with route on the fast path (nil:
// net/http only); mod adjusts the http.Server before Serve.
func startFastServer(t testing.TB, route FastRoute, mod func(*http.Server)) (*Server, string, chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ln, testFastHandler(), "HTTP", func(lg.LogLevel, string, ...interface{}) {})
	s.Fast = route
	if mod != nil {
		mod(s.HTTP)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() { s.Shutdown(time.Second) })
	return s, ln.Addr().String(), done
}

var dateRE = regexp.MustCompile(`Date: [^\r]*\r\n`)

// exchange writes each part of reqs (pausing between parts so they arrive
// apart), half-closes and returns everything answered, Date removed.
func exchange(t testing.TB, addr string, parts ...string) string {
	t.Helper()
	out, err := tryExchange(addr, parts...)
	if err != nil {
		t.Fatalf("exchange: %v (got %q)", err, out)
	}
	return out
}

// tryExchange is exchange returning its error: a server that closes with
// input unread resets the connection, which may cut what it sent.
func tryExchange(addr string, parts ...string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	for _, p := range parts {
		if _, err := c.Write([]byte(p)); err != nil {
			return "", err
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return dateRE.ReplaceAllString(string(b), "Date: -\r\n"), err
}

func post(path, body string, headers ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(headers, "") +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// The fast path answers byte for byte as net/http; what it does not serve
// (other routes, ?fail, HTTP/1.0, unknown headers, a body split across
// reads...) net/http serves on the same connection.
func TestFastPathAnswersAsNetHTTP(t *testing.T) {
	route := &testFastRoute{}
	_, fastAddr, _ := startFastServer(t, route, nil)
	_, slowAddr, _ := startFastServer(t, nil, nil)

	big := strings.Repeat("b", 900)
	cases := map[string][]string{
		"one":           {post("/fast", "abc")},
		"pipelined":     {post("/fast", "a") + post("/fast?err", "b") + post("/fast", "c")},
		"split":         append(strings.Split(post("/fast", "abcdef"), ""), post("/fast", big)[:40], post("/fast", big)[40:500], post("/fast", big)[500:]),
		"error":         {post("/fast?err", "abc")},
		"handed off":    {post("/fast?fail", "abc"), post("/fast", "abc")},
		"other route":   {"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", post("/fast", "abc")},
		"http/1.0":      {"POST /fast HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"},
		"conn close":    {post("/fast", "abc", "Connection: close\r\n")},
		"keep-alive":    {post("/fast", "abc", "connection: Keep-Alive\r\n", "User-Agent: t\r\n")},
		"unknown hdr":   {post("/fast", "abc", "X-Foo: bar\r\n"), post("/fast", "d")},
		"too big":       {post("/fast", strings.Repeat("z", 1001))},
		"no host":       {"POST /fast HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"},
		"two hosts":     {post("/fast", "abc", "Host: y\r\n")},
		"bare LF":       {"POST /fast HTTP/1.1\nHost: x\nContent-Length: 1\n\nx"},
		"chunked":       {"POST /fast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		"expect":        {post("/fast", "abc", "Expect: 100-continue\r\n")},
		"zero length":   {post("/fast", "")},
		"bad length":    {"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nx"},
		"space in uri":  {"POST /fast ?a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"},
		"obs fold":      {"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n continued\r\n\r\nx"},
		"garbage":       {"\x00\x01 nonsense\r\n\r\n"},
		"CR in a name":  {"POST /fast HTTP/1.1\r\nHost: x\r\nContent\rLength: 1\r\n\r\nx"},
		"CR in a value": {"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: keep\ralive\r\n\r\nx"},
		"cut in body":   {post("/fast", "abcdef")[:len(post("/fast", "abcdef"))-2]},
		"cut in head":   {"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Le"},
		"cut in line":   {"GARB"},
	}
	for name, parts := range cases {
		got, want := exchange(t, fastAddr, parts...), exchange(t, slowAddr, parts...)
		if got != want {
			t.Errorf("%s: fast path answered\n%q\nnet/http answers\n%q", name, got, want)
		}
	}
	if route.handled.Load() == 0 {
		t.Fatal("the fast path answered nothing")
	}
}

// What the fast path answers itself: the cases above that must not have
// gone to net/http (a route that is never used would pass that test).
func TestFastPathServesPlainRequests(t *testing.T) {
	route := &testFastRoute{}
	_, addr, _ := startFastServer(t, route, nil)
	exchange(t, addr, post("/fast", "a")+post("/fast?err", "b"), post("/fast", "c"))
	if n := route.handled.Load(); n != 3 {
		t.Fatalf("fast path answered %d of 3", n)
	}
	route.handled.Store(0)
	exchange(t, addr, post("/fast?fail", "a"), post("/fast", "b"))
	if n := route.handled.Load(); n != 0 {
		t.Fatalf("fast path answered %d requests after handing the connection over", n)
	}
}

// net/http's timeouts: a new connection that sends no whole head is cut
// off after ReadHeaderTimeout, a kept-alive one after IdleTimeout, and
// what is answered then (nothing, or net/http's 400 for a half line) is
// net/http's answer.
func TestFastPathTimeouts(t *testing.T) {
	timeouts := func(hs *http.Server) {
		hs.ReadHeaderTimeout = 200 * time.Millisecond
		hs.IdleTimeout = 600 * time.Millisecond
	}
	_, fastAddr, _ := startFastServer(t, &testFastRoute{}, timeouts)
	_, slowAddr, _ := startFastServer(t, nil, timeouts)
	// sendAndWait writes each part, then reads until the server closes
	closedAfter := func(addr string, parts ...string) (time.Duration, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, p := range parts {
			c.Write([]byte(p))
		}
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		return time.Since(start), dateRE.ReplaceAllString(string(b), "")
	}
	for name, c := range map[string]struct {
		parts    []string
		min, max time.Duration
	}{
		"nothing":        {nil, 150 * time.Millisecond, 2 * time.Second},
		"half a head":    {[]string{"POST /fast HTTP/1.1\r\nHost: x\r\n"}, 150 * time.Millisecond, 2 * time.Second},
		"half a line":    {[]string{"POST /fast HTTP/1.1\r\nHo"}, 150 * time.Millisecond, 2 * time.Second},
		"half a request": {[]string{"POST /fa"}, 150 * time.Millisecond, 2 * time.Second},
		"idle":           {[]string{post("/fast", "a")}, 500 * time.Millisecond, 3 * time.Second},
	} {
		fd, fb := closedAfter(fastAddr, c.parts...)
		_, sb := closedAfter(slowAddr, c.parts...)
		if fd < c.min || fd > c.max {
			t.Errorf("%s: closed after %v, want %v..%v", name, fd, c.min, c.max)
		}
		if fb != sb {
			t.Errorf("%s: fast path answered %q, net/http %q", name, fb, sb)
		}
	}
}

// A client trickling a head byte by byte is cut off at the header timeout
// from the head's start, as by net/http: reads do not move it.
func TestFastPathHeaderTimeoutNotMovedByReads(t *testing.T) {
	timeouts := func(hs *http.Server) { hs.ReadHeaderTimeout = 300 * time.Millisecond }
	_, fastAddr, _ := startFastServer(t, &testFastRoute{}, timeouts)
	_, slowAddr, _ := startFastServer(t, nil, timeouts)
	trickle := func(addr string) time.Duration {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closed := make(chan time.Duration, 1)
		start := time.Now()
		go func() {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.ReadAll(c)
			closed <- time.Since(start)
		}()
		head := "POST /fast HTTP/1.1\r\nHost: x\r\nUser-Agent: " + strings.Repeat("u", 100)
		for i := 0; i < len(head); i++ {
			select {
			case d := <-closed:
				return d
			case <-time.After(20 * time.Millisecond):
			}
			c.Write([]byte{head[i]})
		}
		return <-closed
	}
	for name, addr := range map[string]string{"fast path": fastAddr, "net/http": slowAddr} {
		if d := trickle(addr); d < 250*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("%s: a trickled head was cut off after %v, want ~300ms", name, d)
		}
	}
}

// Shutdown closes idle fast connections at once, lets one in the middle of
// a head run to the timeout, and makes Serve return.
func TestFastPathShutdown(t *testing.T) {
	s, addr, done := startFastServer(t, &testFastRoute{}, nil)
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte(post("/fast", "a")))
	rd := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(rd, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("answer: %v %v", resp, err)
	}
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.Write([]byte("POST /fast HTTP/1.1\r\nHost: x\r\n"))
	time.Sleep(50 * time.Millisecond)

	start := time.Now()
	s.Shutdown(300 * time.Millisecond)
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("Shutdown took %v; want the 300ms timeout (a head was in progress)", d)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "busy": busy} {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 10)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s connection still open after Shutdown (read %d, %v)", name, n, err)
		}
	}
	expectServeReturned(t, done, 2*time.Second)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
}

// A request stuck in its route (a publish waiting on a disk) does not hold
// Shutdown past its timeout: the connection is closed, the goroutine left
// to finish, as http.Server.Close does.
func TestFastPathShutdownLeavesAStuckRequest(t *testing.T) {
	route := &testFastRoute{release: make(chan struct{})}
	s, addr, done := startFastServer(t, route, nil)
	defer close(route.release)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(post("/fast?block", "a")))
	time.Sleep(50 * time.Millisecond)
	shut := make(chan struct{})
	go func() {
		s.Shutdown(200 * time.Millisecond)
		close(shut)
	}()
	select {
	case <-shut:
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown still waiting 3 s after its 200 ms timeout, for a request stuck in its route")
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection of the stuck request still open: %v", err)
	}
	expectServeReturned(t, done, 2*time.Second)
}

func TestParseFastHeadLimits(t *testing.T) {
	route := &testFastRoute{}
	head := "POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
	req, st := parseFastHead([]byte(head+"hello"), route)
	if st != headFast || req.headLen != len(head) || req.contentLength != 5 || string(req.path) != "/fast" {
		t.Fatalf("parse = %+v, %d", req, st)
	}
	for i := 1; i < len(head); i++ {
		if _, st := parseFastHead([]byte(head[:i]), route); st != headIncomplete {
			t.Fatalf("prefix of %d bytes: state %d, want incomplete", i, st)
		}
	}
	long := "POST /fast HTTP/1.1\r\nHost: x\r\nUser-Agent: " + strings.Repeat("u", fastMaxHead) + "\r\n"
	if _, st := parseFastHead([]byte(long), route); st != headNotFast {
		t.Fatalf("a head longer than %d: state %d, want not fast", fastMaxHead, st)
	}
	if _, st := parseFastHead([]byte("GET /fast HTTP/1.1\r\n"), route); st != headNotFast {
		t.Fatal("GET judged before the head is in: want not fast")
	}
	if _, st := parseFastHead(bytes.Repeat([]byte("x"), fastMaxHead+1), route); st != headNotFast {
		t.Fatal("a request line without end: want not fast")
	}
}

// Arbitrary bytes on a connection get the same answers from the fast path
// as from net/http alone, split into two writes at any point.
func FuzzFastPathAnswersAsNetHTTP(f *testing.F) {
	for _, seed := range []string{
		post("/fast", "abc") + post("/fast?err", "d"),
		post("/fast?fail", "a") + post("/fast", "b"),
		"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX: y\r\n\r\nabc",
		"POST /fast HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
		"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /fast HTTP/1.1\r\nhost: x\r\ncontent-length: 01\r\nconnection: keep-alive\r\n\r\nx",
		"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
	} {
		f.Add(seed, uint16(len(seed)/2))
	}
	_, fastAddr, _ := startFastServer(f, &testFastRoute{}, nil)
	_, slowAddr, _ := startFastServer(f, nil, nil)
	f.Fuzz(func(t *testing.T, in string, cut uint16) {
		if len(in) > 4096 {
			return
		}
		parts := []string{in}
		if c := int(cut); c > 0 && c < len(in) {
			parts = []string{in[:c], in[c:]}
		}
		got, gerr := tryExchange(fastAddr, parts...)
		want, werr := tryExchange(slowAddr, parts...)
		if errors.Is(gerr, syscall.ECONNRESET) || errors.Is(werr, syscall.ECONNRESET) ||
			errors.Is(gerr, syscall.EPIPE) || errors.Is(werr, syscall.EPIPE) {
			return // closed with input unread: what arrived is the kernel's choice
		}
		if gerr != nil || werr != nil {
			t.Fatalf("input %q: fast path %v, net/http %v", in, gerr, werr)
		}
		if got != want {
			t.Fatalf("input %q: fast path answered\n%q\nnet/http answers\n%q", in, got, want)
		}
	})
}
