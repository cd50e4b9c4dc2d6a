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
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/ournsq/nsq/internal/lg"
)

// testFastRoute serves POST /fast: ?fail hands the request to net/http,
// ?err answers 500, anything else 200 "OK". handled counts the fast answers.
type testFastRoute struct{ handled atomic.Int64 }

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
func startFastServer(t *testing.T, route FastRoute, mod func(*http.Server)) (*Server, string, chan error) {
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
func exchange(t *testing.T, addr string, parts ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range parts {
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading answers: %v (got %q)", err, b)
	}
	return dateRE.ReplaceAllString(string(b), "Date: -\r\n")
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
		"one":          {post("/fast", "abc")},
		"pipelined":    {post("/fast", "a") + post("/fast?err", "b") + post("/fast", "c")},
		"split":        append(strings.Split(post("/fast", "abcdef"), ""), post("/fast", big)[:40], post("/fast", big)[40:500], post("/fast", big)[500:]),
		"error":        {post("/fast?err", "abc")},
		"handed off":   {post("/fast?fail", "abc"), post("/fast", "abc")},
		"other route":  {"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", post("/fast", "abc")},
		"http/1.0":     {"POST /fast HTTP/1.0\r\nContent-Length: 1\r\n\r\nx"},
		"conn close":   {post("/fast", "abc", "Connection: close\r\n")},
		"keep-alive":   {post("/fast", "abc", "connection: Keep-Alive\r\n", "User-Agent: t\r\n")},
		"unknown hdr":  {post("/fast", "abc", "X-Foo: bar\r\n"), post("/fast", "d")},
		"too big":      {post("/fast", strings.Repeat("z", 1001))},
		"no host":      {"POST /fast HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"},
		"two hosts":    {post("/fast", "abc", "Host: y\r\n")},
		"bare LF":      {"POST /fast HTTP/1.1\nHost: x\nContent-Length: 1\n\nx"},
		"chunked":      {"POST /fast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		"expect":       {post("/fast", "abc", "Expect: 100-continue\r\n")},
		"zero length":  {post("/fast", "")},
		"bad length":   {"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\nx"},
		"space in uri": {"POST /fast ?a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"},
		"obs fold":     {"POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n continued\r\n\r\nx"},
		"garbage":      {"\x00\x01 nonsense\r\n\r\n"},
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

// net/http's timeouts: a new connection that sends no whole head is closed
// after ReadHeaderTimeout, a kept-alive one after IdleTimeout, silently.
func TestFastPathTimeouts(t *testing.T) {
	_, addr, _ := startFastServer(t, &testFastRoute{}, func(hs *http.Server) {
		hs.ReadHeaderTimeout = 200 * time.Millisecond
		hs.IdleTimeout = 600 * time.Millisecond
	})
	closedAfter := func(c net.Conn) (time.Duration, string) {
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		return time.Since(start), string(b)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("POST /fast HTTP/1.1\r\nHo"))
	if d, b := closedAfter(c); d < 150*time.Millisecond || d > 2*time.Second || b != "" {
		t.Errorf("partial head: closed after %v with %q; want ~200ms, nothing", d, b)
	}
	c.Close()

	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(post("/fast", "a")))
	rd := bufio.NewReader(c)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("answer: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := rd.Read(make([]byte, 1))
	if d := time.Since(start); d < 500*time.Millisecond || d > 3*time.Second || n != 0 {
		t.Errorf("idle connection closed after %v (read %d bytes); want ~600ms", d, n)
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
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
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
