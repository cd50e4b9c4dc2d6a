package nsqd

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fpPost renders one HTTP/1.1 POST with a Content-Length body.
func fpPost(path, body string, headers ...string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + strings.Join(headers, "") +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

var fpDateRE = regexp.MustCompile(`Date: [^\r]*\r\n`)

// fpExchange writes parts to addr with pauses between them, half-closes
// and returns all answers with their Date removed.
func fpExchange(t *testing.T, addr string, parts []string) string {
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
		time.Sleep(3 * time.Millisecond)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading answers: %v (got %q)", err, b)
	}
	return fpDateRE.ReplaceAllString(string(b), "Date: -\r\n")
}

// fpTopics lists "name count bytes depth" for every topic of n.
func fpTopics(n *NSQD) []string {
	n.RLock()
	defer n.RUnlock()
	var out []string
	for name, t := range n.topicMap {
		out = append(out, name+" "+strconv.FormatUint(t.MessageCount(), 10)+" "+
			strconv.FormatUint(t.MessageBytes(), 10)+" "+strconv.FormatInt(t.Depth(), 10))
	}
	sort.Strings(out)
	return out
}

// /pub and /mpub answered on the fast path are the answers of net/http and
// doPUB/doMPUB, byte for byte, and publish the same messages — for the
// requests it serves and for every one it hands over (4xx, odd queries or
// headers, oversized bodies, a body that crosses the fast path's limit).
func TestHTTPFastPathMatchesNetHTTP(t *testing.T) {
	mod := func(o *Options) {
		o.HTTPAddress = "127.0.0.1:0"
		o.MaxMsgSize = 100
		o.MaxBodySize = 2 << 20
	}
	fast := startTestNSQD(t, mod)
	slow := startTestNSQD(t, func(o *Options) { mod(o); o.noHTTPFastPath = true })
	if fast.httpServer.Fast == nil || slow.httpServer.Fast != nil {
		t.Fatal("fast path not on where expected")
	}

	binMPUB := func(bodies ...string) string {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(bodies)))
		for _, m := range bodies {
			b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
			b = append(b, m...)
		}
		return string(b)
	}
	lines := func(n, size int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(strings.Repeat(string(rune('a'+i%26)), size))
		}
		return b.String()
	}
	big := lines(15000, 90) // ~1.4 MB: beyond the fast path's request limit
	cases := map[string][]string{
		"pub":             {fpPost("/pub?topic=a", "hello")},
		"pipelined":       {fpPost("/pub?topic=a", "1") + fpPost("/pub?topic=b", "2") + fpPost("/mpub?topic=a", "3\n4")},
		"split":           strings.Split(fpPost("/pub?topic=a", "split body"), ""),
		"defer":           {fpPost("/pub?topic=d&defer=5000", "later")},
		"first value":     {fpPost("/pub?topic=a&topic=b&x=1&&", "first")},
		"ephemeral":       {fpPost("/pub?topic=e%23ephemeral", "eph")},
		"raw #":           {fpPost("/pub?topic=r#ephemeral", "raw"), fpPost("/pub?topic=r#x", "bad")},
		"mpub text":       {fpPost("/mpub?topic=m", "x\n\ny\r\nz\n")},
		"mpub binary":     {fpPost("/mpub?topic=m&binary=true", binMPUB("p", "q")), fpPost("/mpub?topic=m&binary=1", binMPUB("r"))},
		"mpub binary bad": {fpPost("/mpub?topic=m&binary=true", binMPUB("p")[:6]), fpPost("/pub?topic=a", "after")},
		"mpub too big":    {fpPost("/mpub?topic=m", "ok\n"+strings.Repeat("x", 101))},
		"mpub deprecated": {fpPost("/mpub?topic=m&binary=yes", binMPUB("s"))},
		"mpub large":      {fpPost("/mpub?topic=big", lines(3000, 90))},
		"mpub huge":       {fpPost("/mpub?topic=huge", big)[:70000], fpPost("/mpub?topic=huge", big)[70000:]},
		"bad topic":       {fpPost("/pub?topic=bad!", "x"), fpPost("/pub?topic=a", "after")},
		"no topic":        {fpPost("/pub", "x"), fpPost("/pub?topic=a", "after")},
		"bad defer":       {fpPost("/pub?topic=a&defer=x", "x"), fpPost("/pub?topic=a&defer=-1", "x"), fpPost("/pub?topic=a&defer=99999999999", "x")},
		"bad query":       {fpPost("/pub?topic=a;b", "x"), fpPost("/pub?topic=a%zz", "x")},
		"empty":           {fpPost("/pub?topic=a", "")},
		"too big":         {fpPost("/pub?topic=a", strings.Repeat("x", 101)), fpPost("/pub?topic=a", "after")},
		"http/1.0":        {"POST /pub?topic=a HTTP/1.0\r\nContent-Length: 2\r\n\r\nv1"},
		"close":           {fpPost("/pub?topic=a", "bye", "Connection: close\r\n")},
		"headers":         {fpPost("/pub?topic=a", "curl", "User-Agent: curl/8\r\n", "Accept: */*\r\n", "Content-Type: application/x-www-form-urlencoded\r\n")},
		"other header":    {fpPost("/pub?topic=a", "x", "X-Other: 1\r\n"), fpPost("/pub?topic=a", "y")},
		"trailing slash":  {fpPost("/pub/?topic=a", "x")},
		"other routes":    {"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", fpPost("/pub?topic=a", "x")},
		"wrong method":    {"PUT /pub?topic=a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"},
		"cut in body":     {fpPost("/pub?topic=a", "hello")[:len(fpPost("/pub?topic=a", "hello"))-2]},
		"cut in mpub":     {fpPost("/pub?topic=a", "1") + fpPost("/mpub?topic=a", "x\ny\nz")[:60]},
	}
	names := make([]string, 0, len(cases))
	for name := range cases {
		names = append(names, name)
	}
	sort.Strings(names)
	fastAddr, slowAddr := fast.RealHTTPAddr().String(), slow.RealHTTPAddr().String()
	for _, name := range names {
		got, want := fpExchange(t, fastAddr, cases[name]), fpExchange(t, slowAddr, cases[name])
		if got != want {
			t.Errorf("%s: fast path answered\n%.600q\nnet/http answers\n%.600q", name, got, want)
		}
	}
	// pub, pipelined (3), split, defer, first value, ephemeral, raw #, mpub text,
	// mpub binary (2), mpub large, headers, the first of "cut in mpub";
	// every other request went to net/http, and with it the rest of its
	// connection
	if n := fast.httpServer.FastAnswers(); n != 15 {
		t.Errorf("fast path answered %d requests, want 15", n)
	}
	if got, want := fpTopics(fast), fpTopics(slow); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("published differently:\nfast path %q\nnet/http  %q", got, want)
	}
}

// With --tls-required every plain HTTP answer is TLS_REQUIRED: no fast path.
func TestHTTPFastPathOffWhenTLSRequired(t *testing.T) {
	n := &NSQD{}
	n.opts.Store(&Options{TLSRequired: TLSRequired})
	if n.httpFastRoute() != nil {
		t.Fatal("fast path on with --tls-required")
	}
}

// A topic that is closing answers /pub and /mpub with 503 EXITING (D-HTTP-14,
// D-HTTP-15), on the fast path as through net/http, and keeps nothing.
func TestHTTPPublishToExitingTopic(t *testing.T) {
	for _, fast := range []bool{true, false} {
		n := startTestNSQD(t, func(o *Options) {
			o.HTTPAddress = "127.0.0.1:0"
			o.noHTTPFastPath = !fast
		})
		topic := n.GetTopic("closing")
		// as between Close's exit flag and the topic leaving nsqd's map;
		// restored so that the test's own shutdown closes it
		topic.exitFlag.Store(true)
		got := fpExchange(t, n.RealHTTPAddr().String(), []string{
			fpPost("/pub?topic=closing", "a") + fpPost("/mpub?topic=closing", "b\nc"),
		})
		topic.exitFlag.Store(false)
		want := strings.Repeat("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"+
			"X-Nsq-Content-Type: nsq; version=1.0\r\nDate: -\r\nContent-Length: 21\r\n\r\n{\"message\":\"EXITING\"}", 2)
		if got != want {
			t.Errorf("fast path %v: answered\n%q\nwant\n%q", fast, got, want)
		}
		if d, c := topic.Depth(), topic.MessageCount(); d != 0 || c != 0 {
			t.Errorf("fast path %v: the closing topic kept %d messages (counted %d)", fast, d, c)
		}
		if fast && n.httpServer.FastAnswers() != 2 {
			t.Errorf("fast path answered %d of 2", n.httpServer.FastAnswers())
		}
	}
}

// A /pub whose body the client cuts short (then half-closes) is answered
// 500 INTERNAL_ERROR and publishes nothing (D-HTTP-14), with or without
// the fast path (it hands such a request to net/http).
func TestHTTPPubCutBody(t *testing.T) {
	for _, fast := range []bool{true, false} {
		n := startTestNSQD(t, func(o *Options) {
			o.HTTPAddress = "127.0.0.1:0"
			o.noHTTPFastPath = !fast
		})
		req := fpPost("/pub?topic=cut", "0123456789")
		got := fpExchange(t, n.RealHTTPAddr().String(), []string{req[:len(req)-4]})
		want := "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json; charset=utf-8\r\n" +
			"X-Nsq-Content-Type: nsq; version=1.0\r\nDate: -\r\nContent-Length: 28\r\n\r\n{\"message\":\"INTERNAL_ERROR\"}"
		if got != want {
			t.Errorf("fast path %v: answered\n%q\nwant\n%q", fast, got, want)
		}
		if c := n.GetTopic("cut").MessageCount(); c != 0 {
			t.Errorf("fast path %v: %d messages published from a cut body", fast, c)
		}
	}
}

// Go's own HTTP client (keep-alive, User-Agent, Accept-Encoding) and curl's
// usual headers are served on the fast path.
func TestHTTPFastPathServesCommonClients(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.HTTPAddress = "127.0.0.1:0" })
	addr := n.RealHTTPAddr().String()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range 3 {
		resp, err := client.Post("http://"+addr+"/pub?topic=go", "application/octet-stream", strings.NewReader("m"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "OK" {
			t.Fatalf("POST /pub: %d %q", resp.StatusCode, b)
		}
	}
	curl := fpPost("/pub?topic=curl", "c", "User-Agent: curl/8.5.0\r\n", "Accept: */*\r\n",
		"Content-Type: application/x-www-form-urlencoded\r\n")
	fpExchange(t, addr, []string{curl})
	if got := n.httpServer.FastAnswers(); got != 4 {
		t.Fatalf("fast path answered %d of 4", got)
	}
	if c := n.GetTopic("go").MessageCount() + n.GetTopic("curl").MessageCount(); c != 4 {
		t.Fatalf("%d messages published, want 4", c)
	}
}
