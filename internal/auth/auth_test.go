package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorded is one request as the fake auth server saw it.
type recorded struct {
	method, uri, accept, contentType, body string
}

// fakeAuthd answers with handler and records every request.
type fakeAuthd struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFakeAuthd(t *testing.T, tlsServer bool, handler func(w http.ResponseWriter, r *http.Request)) *fakeAuthd {
	t.Helper()
	f := &fakeAuthd{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.RequestURI(), r.Header.Get("Accept"), r.Header.Get("Content-Type"), string(b)})
		f.mu.Unlock()
		handler(w, r)
	})
	if tlsServer {
		f.Server = httptest.NewTLSServer(h)
	} else {
		f.Server = httptest.NewServer(h)
	}
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAuthd) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fakeAuthd) addr() string { return f.Listener.Addr().String() }

func reply(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

const goodAnswer = `{"ttl":3600,"identity":"id1","identity_url":"http://id/1",` +
	`"authorizations":[{"topic":"^apple$","channels":[".*"],"permissions":["subscribe","publish"]}]}`

var req1 = Request{RemoteIP: "127.0.0.1", Secret: "s e/c&r=t"}

func client() *http.Client { return &http.Client{Timeout: 5 * time.Second} }

// D-CLI-15: host:port → http://host:port/auth; a full URL is used as-is.
func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4181":               "http://127.0.0.1:4181/auth",
		"auth.example:80":              "http://auth.example:80/auth",
		"http://a:1/x/y":               "http://a:1/x/y",
		"https://a/check":              "https://a/check",
		"unix:///tmp/nope":             "unix:///tmp/nope",
		"http://a:1/auth?preset=value": "http://a:1/auth?preset=value",
	} {
		if got := Endpoint(in); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// D-AUTH-01: GET with the sorted, URL-encoded query and the NSQ Accept header.
func TestQueryGET(t *testing.T) {
	f := newFakeAuthd(t, false, reply(goodAnswer))
	before := time.Now()
	s, err := QueryOne(context.Background(), client(), f.addr(), MethodGet,
		Request{CommonName: "cn x", RemoteIP: "127.0.0.1", Secret: "s e/c&r=t", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	want := recorded{method: "GET", uri: "/auth?common_name=cn+x&remote_ip=127.0.0.1&secret=s+e%2Fc%26r%3Dt&tls=true",
		accept: "application/vnd.nsq; version=1.0"}
	if reqs[0] != want {
		t.Errorf("request %+v, want %+v", reqs[0], want)
	}
	if s.TTL != 3600 || s.Identity != "id1" || s.IdentityURL != "http://id/1" || len(s.Authorizations) != 1 {
		t.Errorf("state %+v", s)
	}
	if s.Expires.Before(before.Add(3599*time.Second)) || s.Expires.After(time.Now().Add(3600*time.Second)) {
		t.Errorf("expires %v, want ~1h from now", s.Expires)
	}
	if s.IsExpired() {
		t.Error("fresh state is expired")
	}
}

// D-AUTH-01: a full URL gets "?<query>" appended, path kept.
func TestQueryFullURL(t *testing.T) {
	f := newFakeAuthd(t, false, reply(goodAnswer))
	if _, err := QueryOne(context.Background(), client(), f.URL+"/v2/check", MethodGet, req1); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[0].uri; got != "/v2/check?common_name=&remote_ip=127.0.0.1&secret=s+e%2Fc%26r%3Dt&tls=false" {
		t.Errorf("uri %q", got)
	}
}

// D-AUTH-02, Q-09: POST, no query, JSON body whose values are string arrays.
func TestQueryPOST(t *testing.T) {
	f := newFakeAuthd(t, false, reply(goodAnswer))
	if _, err := QueryOne(context.Background(), client(), f.addr(), MethodPost,
		Request{RemoteIP: "127.0.0.1", Secret: "good", TLS: true}); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	want := recorded{method: "POST", uri: "/auth", accept: "application/vnd.nsq; version=1.0",
		contentType: "application/json",
		body:        `{"common_name":[""],"remote_ip":["127.0.0.1"],"secret":["good"],"tls":["true"]}`}
	if r != want {
		t.Errorf("request %+v, want %+v", r, want)
	}
}

// D-AUTH-03: every rejected answer is an error.
func TestQueryRejects(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		errPart    string
	}{
		{"non-200", `{"ttl":10}`, 500, "got response 500"},
		{"404", `not found`, 404, "got response 404"},
		{"bad JSON", `{"ttl":`, 200, "invalid JSON"},
		{"not JSON", `<html>`, 200, "invalid JSON"},
		{"ttl 0", `{"ttl":0,"authorizations":[]}`, 200, "invalid TTL 0"},
		{"ttl missing", `{"authorizations":[]}`, 200, "invalid TTL 0"},
		{"ttl negative", `{"ttl":-5,"authorizations":[]}`, 200, "invalid TTL -5"},
		{"ttl float", `{"ttl":1.5,"authorizations":[]}`, 200, "invalid JSON"},
		{"bad permission", `{"ttl":10,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe","admin"]}]}`, 200, "unknown permission admin"},
		{"permission case", `{"ttl":10,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["Publish"]}]}`, 200, "unknown permission Publish"},
		{"bad topic regex", `{"ttl":10,"authorizations":[{"topic":"(","channels":[".*"],"permissions":["publish"]}]}`, 200, "unable to compile topic"},
		{"bad channel regex", `{"ttl":10,"authorizations":[{"topic":".*","channels":["ok","[z-a]"],"permissions":["publish"]}]}`, 200, "unable to compile channel"},
		{"perl regex", `{"ttl":10,"authorizations":[{"topic":"(?=x)","channels":[".*"],"permissions":["publish"]}]}`, 200, "unable to compile topic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAuthd(t, false, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			s, err := QueryOne(context.Background(), client(), f.addr(), MethodGet, req1)
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("got %+v, %v; want error containing %q", s, err, tc.errPart)
			}
		})
	}
}

// Zero authorizations is a valid answer (nsqd turns it into
// E_UNAUTHORIZED); unknown keys are ignored.
func TestQueryNoAuthorizations(t *testing.T) {
	f := newFakeAuthd(t, false, reply(`{"ttl":5,"identity":"x","extra":true}`))
	s, err := QueryOne(context.Background(), client(), f.addr(), MethodGet, req1)
	if err != nil || len(s.Authorizations) != 0 || s.Identity != "x" {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestQueryTooLarge(t *testing.T) {
	f := newFakeAuthd(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ttl":1,"identity":"`)
		io.WriteString(w, strings.Repeat("x", MaxResponseSize))
		io.WriteString(w, `"}`)
	})
	if _, err := QueryOne(context.Background(), client(), f.addr(), MethodGet, req1); err == nil ||
		!strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err %v", err)
	}
}

// D-AUTH-03: a 403 on http:// is retried once on https://host:<https_port>,
// with the same path, query and method.
func TestQuery403RetriesHTTPS(t *testing.T) {
	for _, method := range []string{MethodGet, MethodPost} {
		t.Run(method, func(t *testing.T) {
			secure := newFakeAuthd(t, true, reply(goodAnswer))
			_, port, _ := net.SplitHostPort(secure.addr())
			plain := newFakeAuthd(t, false, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(403)
				fmt.Fprintf(w, `{"https_port":%s}`, port)
			})
			s, err := QueryOne(context.Background(), secure.Client(), plain.URL+"/auth/x", method, req1)
			if err != nil {
				t.Fatal(err)
			}
			if s.Identity != "id1" {
				t.Errorf("state %+v", s)
			}
			p, sec := plain.requests(), secure.requests()
			if len(p) != 1 || len(sec) != 1 {
				t.Fatalf("requests: plain %v, secure %v", p, sec)
			}
			if sec[0].uri != p[0].uri || sec[0].method != p[0].method || sec[0].body != p[0].body {
				t.Errorf("retry %+v differs from %+v", sec[0], p[0])
			}
		})
	}
}

// Only once: a second 403 (on https) is a failure, and a 403 on an https://
// endpoint is not retried at all.
func TestQuery403Once(t *testing.T) {
	secure := newFakeAuthd(t, true, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		io.WriteString(w, `{"https_port":1}`)
	})
	_, port, _ := net.SplitHostPort(secure.addr())
	plain := newFakeAuthd(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		fmt.Fprintf(w, `{"https_port":%s}`, port)
	})
	if _, err := QueryOne(context.Background(), secure.Client(), plain.addr(), MethodGet, req1); err == nil ||
		!strings.Contains(err.Error(), "got response 403") {
		t.Fatalf("err %v", err)
	}
	if len(secure.requests()) != 1 {
		t.Fatalf("secure requests %d", len(secure.requests()))
	}
	if _, err := QueryOne(context.Background(), secure.Client(), secure.URL, MethodGet, req1); err == nil {
		t.Fatal("403 on https accepted")
	}
	if len(secure.requests()) != 2 {
		t.Fatalf("https 403 retried: %d requests", len(secure.requests()))
	}

	// a 403 without a usable https_port fails at once
	bare := newFakeAuthd(t, false, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) })
	if _, err := QueryOne(context.Background(), client(), bare.addr(), MethodGet, req1); err == nil {
		t.Fatal("403 without https_port accepted")
	}
}

func TestHTTPSEndpoint(t *testing.T) {
	for _, tc := range []struct{ in, body, want string }{
		{"http://h:1/auth?a=b", `{"https_port":443}`, "https://h:443/auth?a=b"},
		{"http://h/p", `{"data":{"https_port":8443}}`, "https://h:8443/p"},
		{"http://[::1]:80/auth", `{"https_port":4443}`, "https://[::1]:4443/auth"},
	} {
		got, err := httpsEndpoint(tc.in, []byte(tc.body))
		if err != nil || got != tc.want {
			t.Errorf("httpsEndpoint(%q, %s) = %q, %v; want %q", tc.in, tc.body, got, err, tc.want)
		}
	}
	for _, body := range []string{``, `{}`, `{"https_port":0}`, `{"https_port":70000}`, `{"https_port":"x"}`} {
		if got, err := httpsEndpoint("http://h/auth", []byte(body)); err == nil {
			t.Errorf("body %q: got %q", body, got)
		}
	}
}

func TestQueryBadMethod(t *testing.T) {
	if _, err := QueryOne(context.Background(), client(), "127.0.0.1:1", "put", req1); err == nil {
		t.Fatal("method put accepted")
	}
}

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// D-AUTH-04: servers are tried from a random start; the first success
// wins; when all fail every error is in the message.
func TestQueryMultipleServers(t *testing.T) {
	a := newFakeAuthd(t, false, reply(goodAnswer))
	b := newFakeAuthd(t, false, reply(goodAnswer))
	dead := deadAddr(t)

	// one down: always succeeds
	for i := 0; i < 20; i++ {
		if _, err := Query(context.Background(), client(), []string{dead, a.addr()}, MethodGet, req1); err != nil {
			t.Fatalf("one server down: %v", err)
		}
	}
	if n := len(a.requests()); n != 20 {
		t.Errorf("server up got %d requests, want 20", n)
	}

	// both up: exactly one is asked each time, and the start varies
	for i := 0; i < 64; i++ {
		if _, err := Query(context.Background(), client(), []string{a.addr(), b.addr()}, MethodGet, req1); err != nil {
			t.Fatal(err)
		}
	}
	na, nb := len(a.requests())-20, len(b.requests())
	if na+nb != 64 || na == 0 || nb == 0 {
		t.Errorf("requests a=%d b=%d: want 64 in total, spread over both", na, nb)
	}

	// all fail: both errors reported
	bad := newFakeAuthd(t, false, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	_, err := Query(context.Background(), client(), []string{dead, bad.addr()}, MethodGet, req1)
	if err == nil || !strings.Contains(err.Error(), dead+":") || !strings.Contains(err.Error(), bad.addr()+": got response 500") {
		t.Fatalf("all down: %v", err)
	}
	if _, err := Query(context.Background(), client(), nil, MethodGet, req1); err == nil {
		t.Fatal("no servers: no error")
	}
}

func TestQueryTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := newFakeAuthd(t, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	start := time.Now()
	_, err := QueryOne(context.Background(), &http.Client{Timeout: 200 * time.Millisecond}, slow.addr(), MethodGet, req1)
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func mustState(t *testing.T, js string) *State {
	t.Helper()
	var s State
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	return &s
}

// D-AUTH-05, Q-09: unanchored RE2 matching; subscribe needs a channel
// match, publish needs a channel regex matching "".
func TestIsAllowed(t *testing.T) {
	s := mustState(t, `{"ttl":1,"authorizations":[
		{"topic":"^apple$","channels":[".*"],"permissions":["subscribe","publish"]},
		{"topic":"nan","channels":["^ch[0-9]$"],"permissions":["subscribe"]},
		{"topic":"cherry","channels":[],"permissions":["publish","subscribe"]},
		{"topic":"date","channels":["x*"],"permissions":["publish"]},
		{"topic":"fig","channels":["^$"],"permissions":[]}
	]}`)
	for _, tc := range []struct {
		topic, channel string
		want           bool
	}{
		{"apple", "", true},
		{"apple", "c", true},
		{"apple2", "", false},     // anchored topic regex
		{"banana", "ch1", true},   // unanchored: "nan" in "banana"
		{"banana", "ch12", false}, // anchored channel regex
		{"banana", "", false},     // no publish permission
		{"cherry", "", false},     // publish but no channel regex
		{"cherry", "c", false},    // subscribe but no channel regex
		{"date", "", true},        // x* matches ""
		{"date", "xx", false},     // subscribe not granted
		{"fig", "", false},        // no permissions
		{"grape", "", false},
	} {
		if got := s.IsAllowed(tc.topic, tc.channel); got != tc.want {
			t.Errorf("IsAllowed(%q, %q) = %v, want %v", tc.topic, tc.channel, got, tc.want)
		}
	}
	a := s.Authorizations[1]
	if !a.HasPermission("subscribe") || a.HasPermission("publish") || a.HasPermission("admin") {
		t.Errorf("HasPermission on %+v", a)
	}
	// an Authorization that never went through validation grants nothing
	var raw Authorization
	if raw.IsAllowed("x", "") {
		t.Error("unvalidated authorization allows")
	}
}

// D-AUTH-06: the answer expires ttl seconds after it was received.
func TestExpiry(t *testing.T) {
	s := mustState(t, `{"ttl":1,"authorizations":[]}`)
	if s.IsExpired() {
		t.Fatal("expired at once")
	}
	s.Expires = time.Now().Add(-time.Millisecond)
	if !s.IsExpired() {
		t.Fatal("not expired")
	}
}
