package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/ournsq/nsq/internal/lg"
)

// logSink collects log lines; safe for concurrent handlers.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) logf(level lg.LogLevel, f string, args ...interface{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, level.String()+": "+fmt.Sprintf(f, args...))
}

func (s *logSink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func (s *logSink) find(prefix string) string {
	for _, l := range s.all() {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// startServer serves h on 127.0.0.1:0 and returns its base URL; the server
// is shut down when the test ends.
func startServer(t *testing.T, h http.Handler, logf LogFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ln, h, "HTTP", logf)
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Shutdown(2 * time.Second); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		expectServeReturned(t, done, 5*time.Second)
	})
	return "http://" + ln.Addr().String()
}

// expectServeReturned checks that Serve returned nil within d.
func expectServeReturned(t testing.TB, done <-chan error, d time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(d):
		t.Error("Serve did not return after Shutdown")
	}
}

// client never follows redirects (we test them) and never keeps
// connections, so no transport goroutine outlives a test.
var client = &http.Client{
	Timeout:       5 * time.Second,
	Transport:     &http.Transport{DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type result struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, body io.Reader) result {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func testRouter(logf LogFunc) *httprouter.Router {
	r := NewRouter(logf)
	log := Log(logf)
	ret := func(v interface{}, err error) APIHandler {
		return func(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) { return v, err }
	}
	r.GET("/ping", Decorate(ret("OK", nil), log, PlainText))
	r.GET("/plainerr", Decorate(ret(nil, Err{503, "DOWN"}), log, PlainText))
	r.GET("/bytes", Decorate(ret([]byte("raw"), nil), log, V1))
	r.GET("/string", Decorate(ret("hello", nil), log, V1))
	r.GET("/nil", Decorate(ret(nil, nil), log, V1))
	r.GET("/json", Decorate(ret(struct {
		B int    `json:"b"`
		A string `json:"a"`
	}{1, "<x>"}, nil), log, V1))
	r.GET("/err", Decorate(ret(nil, Err{400, "MISSING_ARG_TOPIC"}), log, V1))
	r.GET("/wrapped", Decorate(ret(nil, fmt.Errorf("ctx: %w", Err{404, "TOPIC_NOT_FOUND"})), log, V1))
	r.GET("/plain-go-error", Decorate(ret(nil, errors.New("secret detail")), log, V1))
	r.GET("/unmarshalable", Decorate(ret(func() {}, nil), log, V1))
	r.POST("/post", Decorate(ret(nil, nil), log, V1))
	r.GET("/panic", Decorate(func(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
		panic("boom")
	}, log, V1))
	r.GET("/params", Decorate(func(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
		p, err := NewReqParams(req)
		if err != nil {
			return nil, err
		}
		topic, channel, err := GetTopicChannelArgs(p)
		if err != nil {
			return nil, err
		}
		return topic + "/" + channel, nil
	}, log, V1))
	r.POST("/params", Decorate(func(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
		p, err := NewReqParams(req)
		if err != nil {
			return nil, err
		}
		return GetTopicArg(p)
	}, log, V1))
	AddPprof(r)
	return r
}

// D-HTTP-01, D-HTTP-02, D-HTTP-03, D-HTTP-06, D-HTTP-07
func TestRouterAndDecorators(t *testing.T) {
	sink := &logSink{}
	base := startServer(t, testRouter(sink.logf), sink.logf)

	const (
		v1   = NSQContentTypeV1
		json = ContentTypeJSON
		text = "text/plain; charset=utf-8"
		none = ""
	)
	cases := []struct {
		method, path string
		body         string
		code         int
		ctype        string // "" = header must be absent
		nsq          string // X-NSQ-Content-Type, "" = absent
		want         string
		allow        string
		location     string
	}{
		{"GET", "/ping", "", 200, text, none, "OK", "", ""},
		{"GET", "/plainerr", "", 503, text, none, "DOWN", "", ""},
		{"GET", "/string", "", 200, text, v1, "hello", "", ""},
		{"GET", "/bytes", "", 200, text, v1, "raw", "", ""},
		{"GET", "/nil", "", 200, none, v1, "", "", ""},
		{"GET", "/json", "", 200, json, v1, `{"b":1,"a":"\u003cx\u003e"}`, "", ""},
		{"GET", "/err", "", 400, json, v1, `{"message":"MISSING_ARG_TOPIC"}`, "", ""},
		{"GET", "/wrapped", "", 404, json, v1, `{"message":"TOPIC_NOT_FOUND"}`, "", ""},
		{"GET", "/plain-go-error", "", 500, json, v1, `{"message":"INTERNAL_ERROR"}`, "", ""},
		{"GET", "/unmarshalable", "", 500, json, v1, `{"message":"INTERNAL_ERROR"}`, "", ""},
		{"GET", "/panic", "", 500, json, v1, `{"message":"INTERNAL_ERROR"}`, "", ""},
		{"GET", "/nope", "", 404, json, v1, `{"message":"NOT_FOUND"}`, "", ""},
		{"GET", "/post", "", 405, json, v1, `{"message":"METHOD_NOT_ALLOWED"}`, "OPTIONS, POST", ""},
		{"DELETE", "/ping", "", 405, json, v1, `{"message":"METHOD_NOT_ALLOWED"}`, "GET, OPTIONS", ""},
		{"HEAD", "/ping", "", 405, json, v1, "", "GET, OPTIONS", ""},
		{"OPTIONS", "/post", "", 200, none, none, "", "OPTIONS, POST", ""},
		{"OPTIONS", "/params", "", 200, none, none, "", "GET, OPTIONS, POST", ""},
		{"OPTIONS", "/nope", "", 404, json, v1, `{"message":"NOT_FOUND"}`, "", ""},
		{"GET", "/ping/", "", 301, "", none, "", "", "/ping"},
		{"POST", "/post/", "", 307, "", none, "", "", "/post"},
		{"GET", "/PING", "", 301, "", none, "", "", "/ping"},
		{"GET", "/debug/pprof/", "", 301, "", none, "", "", "/debug/pprof"},
		// parameters: query only, first value wins, body ignored
		{"GET", "/params?topic=t1&topic=t2&channel=c", "", 200, text, v1, "t1/c", "", ""},
		{"GET", "/params?topic=t%231&channel=c", "", 400, json, v1, `{"message":"INVALID_ARG_TOPIC"}`, "", ""},
		{"GET", "/params?topic=t%23ephemeral&channel=c%23ephemeral", "", 200, text, v1, "t#ephemeral/c#ephemeral", "", ""},
		{"GET", "/params", "", 400, json, v1, `{"message":"MISSING_ARG_TOPIC"}`, "", ""},
		{"GET", "/params?topic=", "", 400, json, v1, `{"message":"INVALID_ARG_TOPIC"}`, "", ""},
		{"GET", "/params?topic=t", "", 400, json, v1, `{"message":"MISSING_ARG_CHANNEL"}`, "", ""},
		{"GET", "/params?topic=t&channel=b@d", "", 400, json, v1, `{"message":"INVALID_ARG_CHANNEL"}`, "", ""},
		{"GET", "/params?topic=%zz", "", 400, json, v1, `{"message":"INVALID_REQUEST"}`, "", ""},
		{"GET", "/params?topic=a;b", "", 400, json, v1, `{"message":"INVALID_REQUEST"}`, "", ""},
		{"POST", "/params", "topic=x", 400, json, v1, `{"message":"MISSING_ARG_TOPIC"}`, "", ""},
		{"POST", "/params?topic=q", "topic=x", 200, text, v1, "q", "", ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			r := do(t, c.method, base+c.path, body)
			if r.code != c.code {
				t.Errorf("status %d, want %d (body %q)", r.code, c.code, r.body)
			}
			if c.location != "" {
				if got := r.header.Get("Location"); got != c.location {
					t.Errorf("Location %q, want %q", got, c.location)
				}
			} else {
				if got := r.header.Get("Content-Type"); got != c.ctype {
					t.Errorf("Content-Type %q, want %q", got, c.ctype)
				}
				if r.body != c.want {
					t.Errorf("body %q, want %q", r.body, c.want)
				}
			}
			if ok := len(r.header.Values(HeaderNSQContentType)) > 0; ok != (c.nsq != "") {
				t.Errorf("X-NSQ-Content-Type present=%v, want %v", ok, c.nsq != "")
			} else if got := r.header.Get(HeaderNSQContentType); got != c.nsq {
				t.Errorf("X-NSQ-Content-Type %q, want %q", got, c.nsq)
			}
			if got := r.header.Get("Allow"); got != c.allow {
				t.Errorf("Allow %q, want %q", got, c.allow)
			}
		})
	}

	// OPTIONS * is answered 200 (by net/http before the router).
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(b), "HTTP/1.1 200 ") {
		t.Errorf("OPTIONS * -> %q", b)
	}

	// pprof index is served at /debug/pprof.
	if r := do(t, "GET", base+"/debug/pprof", nil); r.code != 200 || !strings.Contains(r.body, "goroutine") {
		t.Errorf("/debug/pprof -> %d", r.code)
	}

	// D-HTTP-07: panic is logged at ERROR. D-HTTP-08: access log format.
	if l := sink.find("ERROR: panic in HTTP handler - boom"); l == "" {
		t.Errorf("no panic log in %q", sink.all())
	}
	for _, prefix := range []string{
		"INFO: 500 GET /panic (127.0.0.1:",
		"INFO: 404 GET /nope (127.0.0.1:",
		"INFO: 405 GET /post (127.0.0.1:",
		"INFO: 200 GET /params?topic=t1&topic=t2&channel=c (127.0.0.1:",
		"INFO: 400 GET /params?topic=%zz (127.0.0.1:",
		"INFO: HTTP: listening on 127.0.0.1:",
	} {
		if sink.find(prefix) == "" {
			t.Errorf("no log line starting %q in %q", prefix, sink.all())
		}
	}
	for _, l := range sink.all() {
		if strings.Contains(l, "/debug/pprof") {
			t.Errorf("pprof route was access-logged: %q", l)
		}
	}
}

func TestPlainTextRejectsOtherTypes(t *testing.T) {
	sink := &logSink{}
	r := NewRouter(sink.logf)
	r.GET("/x", Decorate(func(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
		return 42, nil
	}, PlainText))
	base := startServer(t, r, sink.logf)
	if got := do(t, "GET", base+"/x", nil); got.code != 500 {
		t.Fatalf("status %d", got.code)
	}
}

func TestServerLimitsAndShutdown(t *testing.T) {
	sink := &logSink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	s := NewServer(ln, h, "HTTP", sink.logf)
	if s.HTTP.ReadHeaderTimeout != DefaultReadHeaderTimeout || s.HTTP.IdleTimeout != DefaultIdleTimeout ||
		s.HTTP.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Fatalf("limits not set: %+v", s.HTTP)
	}
	if s.Addr().String() != ln.Addr().String() {
		t.Fatal("Addr mismatch")
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	// A request that never finishes must not hold Shutdown past its timeout.
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("request never arrived")
	}
	start := time.Now()
	s.Shutdown(200 * time.Millisecond)
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("Shutdown took %s", el)
	}
	close(release)
	for _, ch := range []chan struct{}{reqDone} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("client still blocked after Shutdown")
		}
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if sink.find("INFO: HTTP: closing 127.0.0.1:") == "" {
		t.Errorf("no closing log in %q", sink.all())
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting after Shutdown")
	}
}

func TestShutdownBeforeServeClosesListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ln, http.NotFoundHandler(), "HTTP", (&logSink{}).logf)
	if err := s.Shutdown(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still open")
	}
}

func TestReqParamsGet(t *testing.T) {
	req, _ := http.NewRequest("POST", "http://x/p?a=1&a=2&e=", strings.NewReader("b=3"))
	p, err := NewReqParams(req)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := p.Get("a"); !ok || v != "1" {
		t.Errorf("a = %q %v", v, ok)
	}
	if v, ok := p.Get("e"); !ok || v != "" {
		t.Errorf("e = %q %v", v, ok)
	}
	if _, ok := p.Get("b"); ok {
		t.Error("body parameter was read")
	}
	if got := p.GetAll("a"); len(got) != 2 || got[1] != "2" {
		t.Errorf("GetAll = %q", got)
	}
	if got := (Err{418, "TEAPOT"}).Error(); got != "TEAPOT" {
		t.Errorf("Err.Error() = %q", got)
	}
}
