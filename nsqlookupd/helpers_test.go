package nsqlookupd

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests.
const waitLimit = 5 * time.Second

// memLogger collects log lines; lookupd goroutines write it concurrently.
type memLogger struct {
	mu    sync.Mutex
	lines []string
}

func (m *memLogger) Output(_ int, s string) error {
	m.mu.Lock()
	m.lines = append(m.lines, s)
	m.mu.Unlock()
	return nil
}

func (m *memLogger) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

func (m *memLogger) contains(sub string) bool {
	for _, l := range m.all() {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// startLookupd runs an nsqlookupd on 127.0.0.1 port 0 until the test ends.
func startLookupd(t *testing.T, mutate func(*Options)) (*NSQLookupd, *memLogger) {
	t.Helper()
	logs := &memLogger{}
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.BroadcastAddress = "lookupd.test"
	opts.Logger = logs
	opts.HTTPShutdownTimeout = time.Second
	if mutate != nil {
		mutate(opts)
	}
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Main() }()
	t.Cleanup(func() {
		exited := make(chan struct{})
		go func() { l.Exit(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(waitLimit):
			t.Error("Exit did not return")
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Main: %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("Main did not return")
		}
		if t.Failed() {
			for _, line := range logs.all() {
				t.Log(line)
			}
		}
	})
	return l, logs
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// v1conn is a raw protocol V1 session.
type v1conn struct {
	t *testing.T
	net.Conn
}

// dialRaw connects without sending the magic.
func dialRaw(t *testing.T, l *NSQLookupd) *v1conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.RealTCPAddr().String(), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitLimit))
	return &v1conn{t, c}
}

// dialV1 connects and sends the V1 magic.
func dialV1(t *testing.T, l *NSQLookupd) *v1conn {
	t.Helper()
	c := dialRaw(t, l)
	c.write([]byte(magicV1))
	return c
}

func (c *v1conn) write(b []byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *v1conn) cmd(s string) { c.t.Helper(); c.write([]byte(s + "\n")) }

// readFrame reads one [int32 len][data] frame.
func (c *v1conn) readFrame() (string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 1<<20 {
		return "", errors.New("frame too large")
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return string(b), err
}

// expect reads one frame and compares it.
func (c *v1conn) expect(want string) {
	c.t.Helper()
	got, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("reading frame (want %q): %v", want, err)
	}
	if got != want {
		c.t.Fatalf("frame %q, want %q", got, want)
	}
}

// expectClosed asserts the server closed the connection.
func (c *v1conn) expectClosed() {
	c.t.Helper()
	var b [1]byte
	n, err := c.Read(b[:])
	if err != io.EOF {
		c.t.Fatalf("connection not closed: read %d bytes, err %v", n, err)
	}
}

// identifyBody is what nsqd sends.
func identifyBody(fields map[string]interface{}) []byte {
	body := map[string]interface{}{
		"broadcast_address": "nsqd.test",
		"hostname":          "nsqd-host",
		"tcp_port":          4150,
		"http_port":         4151,
		"version":           "1.3.0",
		"topology_zone":     "zone-a",
		"topology_region":   "region-1",
	}
	for k, v := range fields {
		if v == nil {
			delete(body, k)
		} else {
			body[k] = v
		}
	}
	b, _ := json.Marshal(body)
	return b
}

func lengthPrefixed(body []byte) []byte {
	out := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(out, uint32(len(body)))
	return append(out, body...)
}

// identify sends IDENTIFY with body and returns the response frame.
func (c *v1conn) identify(body []byte) string {
	c.t.Helper()
	c.write(append([]byte("IDENTIFY\n"), lengthPrefixed(body)...))
	resp, err := c.readFrame()
	if err != nil {
		c.t.Fatalf("IDENTIFY response: %v", err)
	}
	return resp
}

// nsqdPeer connects, identifies as an nsqd with fields overriding the
// defaults, and returns the session.
func nsqdPeer(t *testing.T, l *NSQLookupd, fields map[string]interface{}) *v1conn {
	t.Helper()
	c := dialV1(t, l)
	if resp := c.identify(identifyBody(fields)); !strings.HasPrefix(resp, "{") {
		t.Fatalf("IDENTIFY -> %q", resp)
	}
	return c
}

// httpClient keeps no idle connections so no goroutine outlives a request,
// and does not follow redirects.
var httpClient = &http.Client{
	Timeout:       waitLimit,
	Transport:     &http.Transport{DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type httpResult struct {
	code   int
	header http.Header
	body   string
}

func doHTTP(t *testing.T, l *NSQLookupd, method, path string, body string) httpResult {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+l.RealHTTPAddr().String()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		t.Fatal(err)
	}
	return httpResult{resp.StatusCode, resp.Header, buf.String()}
}

func getBody(t *testing.T, l *NSQLookupd, path string) string {
	t.Helper()
	r := doHTTP(t, l, "GET", path, "")
	if r.code != 200 {
		t.Fatalf("GET %s -> %d %s", path, r.code, r.body)
	}
	return r.body
}
