package nsqd_test

// AUTH against a fake auth server (D-TCP-28, D-TCP-29, D-ERR-17..26,
// D-AUTH-01..07, D-CLI-15/16, Q-09): raw frames for every error string,
// the auth request as the server sees it, TTL re-queries, /stats, and
// go-nsq clients with cfg.AuthSecret.

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/nsqd"
)

// authReq is one request as the fake auth server saw it.
type authReq struct {
	method, uri, accept, contentType, body, secret string
}

// authFake is an auth server answering per secret.
type authFake struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []authReq
	counts map[string]int
}

const (
	authGoodIdentity = "good-id"
	authGoodURL      = "http://id.example/good"
)

// authAnswers maps a secret to (status, body). "expiring" is special: its
// first answer has ttl 1, every later one is a 500.
var authAnswers = map[string]struct {
	status int
	body   string
}{
	// apple: publish+subscribe on any channel; cherry: subscribe to "ch" only
	"good": {200, `{"ttl":3600,"identity":"good-id","identity_url":"http://id.example/good","authorizations":[` +
		`{"topic":"^apple$","channels":[".*"],"permissions":["subscribe","publish"]},` +
		`{"topic":"^cherry$","channels":["^ch$"],"permissions":["subscribe"]}]}`},
	"none":     {200, `{"ttl":3600,"identity":"nobody","authorizations":[]}`},
	"ttl0":     {200, `{"ttl":0,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}`},
	"badperm":  {200, `{"ttl":60,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish","admin"]}]}`},
	"badregex": {200, `{"ttl":60,"authorizations":[{"topic":"(","channels":[".*"],"permissions":["publish"]}]}`},
	"badjson":  {200, `{"ttl":60,`},
	"non200":   {500, `{"message":"boom"}`},
	// no channel regex, so nothing can be published
	"nochan": {200, `{"ttl":60,"authorizations":[{"topic":".*","channels":[],"permissions":["publish","subscribe"]}]}`},
	// ttl 1, re-query succeeds
	"renew": {200, `{"ttl":1,"identity":"renew","authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}`},
}

func newAuthFake(t *testing.T) *authFake {
	t.Helper()
	f := &authFake{counts: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		secret := r.URL.Query().Get("secret")
		if r.Method == "POST" {
			var m map[string][]string
			if json.Unmarshal(b, &m) == nil && len(m["secret"]) == 1 {
				secret = m["secret"][0]
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, authReq{r.Method, r.URL.RequestURI(), r.Header.Get("Accept"),
			r.Header.Get("Content-Type"), string(b), secret})
		f.counts[secret]++
		n := f.counts[secret]
		f.mu.Unlock()

		w.Header().Set("Content-Type", "application/json")
		if secret == "expiring" {
			if n > 1 {
				w.WriteHeader(500)
				return
			}
			io.WriteString(w, `{"ttl":1,"identity":"exp","authorizations":[{"topic":".*","channels":[".*"],"permissions":["publish"]}]}`)
			return
		}
		a, ok := authAnswers[secret]
		if !ok {
			w.WriteHeader(403)
			io.WriteString(w, `{"message":"unknown secret"}`)
			return
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *authFake) addr() string { return f.srv.Listener.Addr().String() }

func (f *authFake) requests() []authReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]authReq(nil), f.reqs...)
}

func (f *authFake) count(secret string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[secret]
}

// startAuthNSQD starts nsqd with the given auth addresses.
func startAuthNSQD(t *testing.T, addrs []string, mod func(*nsqd.Options)) (*nsqd.NSQD, string) {
	t.Helper()
	return startNSQD(t, func(o *nsqd.Options) {
		o.AuthHTTPAddresses = addrs
		if mod != nil {
			mod(o)
		}
	})
}

func authCmd(secret string) []byte { return cat(line("AUTH"), withBody([]byte(secret))) }

const authGoodResponse = `{"identity":"good-id","identity_url":"http://id.example/good","permission_count":2}`

// authed dials and AUTHs with the good secret.
func authed(t *testing.T, addr string) *wireConn {
	t.Helper()
	c := dialV2(t, addr)
	c.write(authCmd("good"))
	c.expectResponse(authGoodResponse)
	return c
}

// D-TCP-28, D-ERR-20..23: AUTH results, each error fatal.
func TestAuthResults(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.addr()}, nil)

	for _, tc := range []struct{ secret, want string }{
		{"none", "E_UNAUTHORIZED AUTH no authorizations found"},
		{"ttl0", "E_AUTH_FAILED AUTH failed"},
		{"badperm", "E_AUTH_FAILED AUTH failed"},
		{"badregex", "E_AUTH_FAILED AUTH failed"},
		{"badjson", "E_AUTH_FAILED AUTH failed"},
		{"non200", "E_AUTH_FAILED AUTH failed"},
		{"unknown", "E_AUTH_FAILED AUTH failed"}, // 403 without https_port
	} {
		t.Run(tc.secret, func(t *testing.T) {
			c := dialV2(t, addr)
			c.write(authCmd(tc.secret))
			c.expectError(tc.want)
			c.expectClosed()
		})
	}

	t.Run("success", func(t *testing.T) {
		c := authed(t, addr)
		c.write(pubCmd("apple", []byte("x")))
		c.expectResponse("OK")
		// D-ERR-20: a second AUTH, even after publishing
		c.write(authCmd("good"))
		c.expectError("E_INVALID AUTH already set")
		c.expectClosed()
	})

	t.Run("identify then auth", func(t *testing.T) {
		c := dialV2(t, addr)
		// D-TCP-20, D-AUTH-07: auth_required true when auth is configured
		c.write(identifyCmd(`{"feature_negotiation":true}`))
		c.expectResponse(`{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":true,"output_buffer_size":16384,"output_buffer_timeout":250,"topology_region":"","topology_zone":""}`)
		c.write(authCmd("good"))
		c.expectResponse(authGoodResponse)
		c.sub("apple", "ch")
		// D-ERR-17: not in state init any more
		c.write(authCmd("good"))
		c.expectError("E_INVALID cannot AUTH in current state")
		c.expectClosed()
	})

	// D-ERR-18, D-ERR-19 with auth enabled: the body checks come first
	for _, tc := range []struct {
		name string
		cmd  []byte
		want string
	}{
		{"D-ERR-18 params", cat(line("AUTH good"), withBody([]byte("good"))), "E_INVALID AUTH invalid number of parameters"},
		{"D-ERR-19 size 0", cat(line("AUTH"), be32(0)), "E_BAD_BODY AUTH invalid body size 0"},
		{"D-ERR-19 too big", cat(line("AUTH"), be32(5*1024*1024+1)), "E_BAD_BODY AUTH body too big 5242881 > 5242880"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialV2(t, addr)
			c.write(tc.cmd)
			c.expectError(tc.want)
			c.expectClosed()
		})
	}
	if n := f.count("good"); n != 2 {
		t.Errorf("good secret queried %d times, want 2 (one per successful AUTH)", n)
	}
}

// D-ERR-21: auth not configured; IDENTIFY says auth_required false.
func TestAuthDisabled(t *testing.T) {
	_, addr := startNSQD(t, nil)
	c := dialV2(t, addr)
	c.write(authCmd("good"))
	c.expectError("E_AUTH_DISABLED AUTH disabled")
	c.expectClosed()

	// and nothing is checked: PUB works without AUTH
	c = dialV2(t, addr)
	c.write(pubCmd("apple", []byte("x")))
	c.expectResponse("OK")
}

// D-TCP-29, D-ERR-25: nothing is published or subscribed before AUTH; the
// check sits after the name (and, for PUB/DPUB, body) checks; MPUB checks
// before reading its body.
func TestAuthFirst(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.addr()}, nil)

	for _, tc := range []struct {
		name string
		cmd  []byte
		want string
	}{
		{"SUB", line("SUB apple ch"), "E_AUTH_FIRST AUTH required before SUB"},
		{"PUB", pubCmd("apple", []byte("x")), "E_AUTH_FIRST AUTH required before PUB"},
		{"DPUB", dpubCmd("apple", 10, []byte("x")), "E_AUTH_FIRST AUTH required before DPUB"},
		{"MPUB", mpubCmd("apple", []byte("x")), "E_AUTH_FIRST AUTH required before MPUB"},
		// MPUB: before the body, so even a bad size is not looked at
		{"MPUB no body", line("MPUB apple"), "E_AUTH_FIRST AUTH required before MPUB"},
		// name and body checks come first
		{"SUB bad channel", line("SUB apple bad/ch"), `E_BAD_CHANNEL SUB channel name "bad/ch" is not valid`},
		{"PUB bad topic", pubCmd("bad/t", []byte("x")), `E_BAD_TOPIC PUB topic name "bad/t" is not valid`},
		{"PUB size 0", cat(line("PUB apple"), be32(0)), "E_BAD_MESSAGE PUB invalid message body size 0"},
		{"DPUB bad timeout", dpubCmd("apple", 3600001, []byte("x")), "E_INVALID DPUB timeout 3600001 out of range 0-3600000"},
		{"DPUB size 0", cat(line("DPUB apple 10"), be32(0)), "E_BAD_MESSAGE DPUB invalid message body size 0"},
		{"MPUB bad topic", line("MPUB bad/t"), `E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "bad/t" is not valid`},
		// commands that are not checked answer as usual
		{"RDY", line("RDY 1"), "E_INVALID cannot RDY in current state"},
		{"FIN", line("FIN 0123456789abcdef"), "E_INVALID cannot FIN in current state"},
		{"CLS", line("CLS"), "E_INVALID cannot CLS in current state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialV2(t, addr)
			c.write(tc.cmd)
			c.expectError(tc.want)
			c.expectClosed()
		})
	}

	t.Run("NOP", func(t *testing.T) {
		c := dialV2(t, addr)
		c.write(line("NOP"))
		c.expectSilence(quiet)
	})

	// PUB/DPUB read the whole body before the check: without the body
	// nsqd waits; once it arrives the answer is E_AUTH_FIRST
	for _, cmd := range []string{"PUB apple", "DPUB apple 10"} {
		t.Run("waits for body "+cmd, func(t *testing.T) {
			c := dialV2(t, addr)
			c.write(cat(line(cmd), be32(4), []byte("ab")))
			c.expectSilence(quiet)
			c.write([]byte("cd"))
			c.expectError("E_AUTH_FIRST AUTH required before " + strings.Fields(cmd)[0])
			c.expectClosed()
		})
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Errorf("auth server queried without AUTH: %v", reqs)
	}
}

// D-TCP-29, D-ERR-26, D-AUTH-05, Q-09: refused operations.
func TestAuthUnauthorized(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.addr()}, nil)

	for _, tc := range []struct {
		name string
		cmd  []byte
		want string
	}{
		{"PUB", pubCmd("banana", []byte("x")), `E_UNAUTHORIZED AUTH failed for PUB on "banana" ""`},
		{"DPUB", dpubCmd("banana", 10, []byte("x")), `E_UNAUTHORIZED AUTH failed for DPUB on "banana" ""`},
		{"MPUB", mpubCmd("banana", []byte("x")), `E_UNAUTHORIZED AUTH failed for MPUB on "banana" ""`},
		// before the body
		{"MPUB no body", line("MPUB banana"), `E_UNAUTHORIZED AUTH failed for MPUB on "banana" ""`},
		{"SUB topic", line("SUB banana ch"), `E_UNAUTHORIZED AUTH failed for SUB on "banana" "ch"`},
		// cherry: subscribe only, channel ^ch$ only
		{"SUB channel", line("SUB cherry other"), `E_UNAUTHORIZED AUTH failed for SUB on "cherry" "other"`},
		{"PUB subscribe-only", pubCmd("cherry", []byte("x")), `E_UNAUTHORIZED AUTH failed for PUB on "cherry" ""`},
		// anchored topic regex ^apple$
		{"PUB apple2", pubCmd("apple2", []byte("x")), `E_UNAUTHORIZED AUTH failed for PUB on "apple2" ""`},
		{"SUB ephemeral", line("SUB banana#ephemeral ch"), `E_UNAUTHORIZED AUTH failed for SUB on "banana#ephemeral" "ch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := authed(t, addr)
			c.write(tc.cmd)
			c.expectError(tc.want)
			c.expectClosed()
		})
	}

	t.Run("allowed", func(t *testing.T) {
		c := authed(t, addr)
		c.write(cat(pubCmd("apple", []byte("a")), dpubCmd("apple", 10, []byte("b")), mpubCmd("apple", []byte("c"), []byte("d"))))
		c.expectResponse("OK")
		c.expectResponse("OK")
		c.expectResponse("OK")
		s := authed(t, addr)
		s.sub("cherry", "ch")
		s2 := authed(t, addr)
		s2.sub("apple", "anything#ephemeral")
	})

	t.Run("Q-09 nochan", func(t *testing.T) {
		c := dialV2(t, addr)
		c.write(authCmd("nochan"))
		c.expectResponse(`{"identity":"","identity_url":"","permission_count":1}`)
		c.write(pubCmd("apple", []byte("x")))
		c.expectError(`E_UNAUTHORIZED AUTH failed for PUB on "apple" ""`)
		c.expectClosed()
	})
}

// D-AUTH-01: the GET request as the auth server sees it.
func TestAuthRequestGET(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.addr()}, nil)
	authed(t, addr)
	reqs := f.requests()
	want := authReq{method: "GET", uri: "/auth?common_name=&remote_ip=127.0.0.1&secret=good&tls=false",
		accept: "application/vnd.nsq; version=1.0", secret: "good"}
	if len(reqs) != 1 || reqs[0] != want {
		t.Fatalf("requests %+v, want [%+v]", reqs, want)
	}

	// secrets are URL-encoded
	c := dialV2(t, addr)
	c.write(authCmd("a b&c=d/é"))
	c.expectError("E_AUTH_FAILED AUTH failed")
	if got := f.requests()[1].uri; got != "/auth?common_name=&remote_ip=127.0.0.1&secret=a+b%26c%3Dd%2F%C3%A9&tls=false" {
		t.Errorf("uri %q", got)
	}
}

// D-AUTH-02, D-CLI-16, Q-09: POST with a JSON body of string arrays.
func TestAuthRequestPOST(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.addr()}, func(o *nsqd.Options) { o.AuthHTTPRequestMethod = "post" })
	c := authed(t, addr)
	c.write(pubCmd("apple", []byte("x")))
	c.expectResponse("OK")
	reqs := f.requests()
	want := authReq{method: "POST", uri: "/auth", accept: "application/vnd.nsq; version=1.0",
		contentType: "application/json",
		body:        `{"common_name":[""],"remote_ip":["127.0.0.1"],"secret":["good"],"tls":["false"]}`,
		secret:      "good"}
	if len(reqs) != 1 || reqs[0] != want {
		t.Fatalf("requests %+v, want [%+v]", reqs, want)
	}
}

// D-CLI-15: an address containing "://" is used as the URL.
func TestAuthFullURL(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.srv.URL + "/custom/authz"}, nil)
	authed(t, addr)
	if got := f.requests()[0].uri; got != "/custom/authz?common_name=&remote_ip=127.0.0.1&secret=good&tls=false" {
		t.Fatalf("uri %q", got)
	}
}

func authDeadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// D-AUTH-04: with one of two servers down every AUTH still succeeds; with
// all down AUTH fails.
func TestAuthMultipleServers(t *testing.T) {
	f := newAuthFake(t)
	dead := authDeadAddr(t)
	_, addr := startAuthNSQD(t, []string{dead, f.addr()}, nil)
	for i := 0; i < 10; i++ {
		c := authed(t, addr)
		c.Close()
	}
	if n := f.count("good"); n != 10 {
		t.Errorf("live server queried %d times, want 10", n)
	}

	_, addr2 := startAuthNSQD(t, []string{dead, authDeadAddr(t)}, nil)
	c := dialV2(t, addr2)
	c.write(authCmd("good"))
	c.expectError("E_AUTH_FAILED AUTH failed")
	c.expectClosed()
}

// D-AUTH-06: after ttl the next PUB re-queries; a failing re-query is
// E_AUTH_FAILED, a good one lets the PUB through.
func TestAuthTTL(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.addr()}, nil)

	exp := dialV2(t, addr)
	exp.write(authCmd("expiring"))
	exp.expectResponse(`{"identity":"exp","identity_url":"","permission_count":1}`)
	renew := dialV2(t, addr)
	renew.write(authCmd("renew"))
	renew.expectResponse(`{"identity":"renew","identity_url":"","permission_count":1}`)

	// within the ttl: no re-query
	exp.write(pubCmd("apple", []byte("x")))
	exp.expectResponse("OK")
	renew.write(pubCmd("apple", []byte("x")))
	renew.expectResponse("OK")
	if f.count("expiring") != 1 || f.count("renew") != 1 {
		t.Fatalf("re-queried within ttl: %v", f.requests())
	}

	time.Sleep(1500 * time.Millisecond)
	exp.write(pubCmd("apple", []byte("y")))
	exp.expectError("E_AUTH_FAILED AUTH failed")
	exp.expectClosed()
	if n := f.count("expiring"); n != 2 {
		t.Errorf("expiring queried %d times, want 2", n)
	}

	renew.write(pubCmd("apple", []byte("y")))
	renew.expectResponse("OK")
	renew.write(mpubCmd("apple", []byte("z")))
	renew.expectResponse("OK")
	if n := f.count("renew"); n != 2 {
		t.Errorf("renew queried %d times, want 2", n)
	}
	// the re-query used the same secret and client data
	for _, r := range f.requests() {
		if r.uri != "/auth?common_name=&remote_ip=127.0.0.1&secret="+r.secret+"&tls=false" {
			t.Errorf("request %+v", r)
		}
	}
}

// D-CLI-16: the method must be exactly get or post.
func TestAuthMethodValidation(t *testing.T) {
	for _, m := range []string{"put", "POST", "GET", ""} {
		opts := nsqd.NewOptions()
		opts.TCPAddress = "127.0.0.1:0"
		opts.HTTPAddress = "127.0.0.1:0"
		opts.DataPath = t.TempDir()
		opts.Logger = &testLogger{t: t, done: true}
		opts.AuthHTTPRequestMethod = m
		n, err := nsqd.New(opts)
		if err == nil {
			n.Exit()
			t.Errorf("method %q accepted", m)
			continue
		}
		if err.Error() != "--auth-http-request-method must be post or get" {
			t.Errorf("method %q: %v", m, err)
		}
	}
}

// D-HTTP-21, D-AUTH-07: authed clients carry authed, auth_identity and
// auth_identity_url, between user_agent and topology_zone.
func TestAuthStats(t *testing.T) {
	f := newAuthFake(t)
	n, addr := startAuthNSQD(t, []string{f.addr()}, nil)
	sub := authed(t, addr)
	sub.sub("apple", "ch")
	pub := authed(t, addr)
	pub.write(pubCmd("apple", []byte("x")))
	pub.expectResponse("OK")

	resp, err := http.Get("http://" + n.RealHTTPAddr().String() + "/stats?format=json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	re := regexp.MustCompile(`"user_agent":"","authed":true,"auth_identity":"good-id","auth_identity_url":"http://id\.example/good","topology_zone"`)
	if got := len(re.FindAll(body, -1)); got != 2 {
		t.Fatalf("want 2 authed clients (consumer, producer), found %d in %s", got, body)
	}
	var doc struct {
		Topics []struct {
			Channels []struct {
				Clients []map[string]interface{} `json:"clients"`
			} `json:"channels"`
		} `json:"topics"`
		Producers []map[string]interface{} `json:"producers"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Producers) != 1 || len(doc.Topics) != 1 || len(doc.Topics[0].Channels) != 1 || len(doc.Topics[0].Channels[0].Clients) != 1 {
		t.Fatalf("stats %s", body)
	}
	for _, cl := range []map[string]interface{}{doc.Producers[0], doc.Topics[0].Channels[0].Clients[0]} {
		if cl["authed"] != true || cl["auth_identity"] != authGoodIdentity || cl["auth_identity_url"] != authGoodURL {
			t.Errorf("client %v", cl)
		}
	}
}

// go-nsq clients with cfg.AuthSecret publish and consume 100 messages.
func TestAuthGoNSQ(t *testing.T) {
	f := newAuthFake(t)
	_, addr := startAuthNSQD(t, []string{f.addr()}, nil)

	cfg := nsq.NewConfig()
	cfg.AuthSecret = "good"
	cfg.MaxInFlight = 50

	var mu sync.Mutex
	got := map[string]int{}
	done := make(chan struct{})
	consumer, err := nsq.NewConsumer("apple", "ch", cfg)
	if err != nil {
		t.Fatal(err)
	}
	consumer.SetLogger(newCLLogger(t, "consumer: "), nsq.LogLevelWarning)
	consumer.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[string(m.Body)]++
		if len(got) == 100 {
			select {
			case <-done:
			default:
				close(done)
			}
		}
		return nil
	}))
	if err := consumer.ConnectToNSQD(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		consumer.Stop()
		select {
		case <-consumer.StopChan:
		case <-time.After(10 * time.Second):
		}
	})

	producer, err := nsq.NewProducer(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	producer.SetLogger(newCLLogger(t, "producer: "), nsq.LogLevelWarning)
	t.Cleanup(producer.Stop)
	var batch [][]byte
	for i := 0; i < 100; i++ {
		body := []byte(fmt.Sprintf("msg-%03d", i))
		if i < 50 {
			if err := producer.Publish("apple", body); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		} else {
			batch = append(batch, body)
		}
	}
	if err := producer.MultiPublish("apple", batch); err != nil {
		t.Fatalf("MultiPublish: %v", err)
	}

	select {
	case <-done:
	case <-time.After(15 * time.Second):
		mu.Lock()
		t.Fatalf("received %d distinct messages, want 100", len(got))
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	for b, n := range got {
		if n != 1 {
			t.Errorf("%s delivered %d times", b, n)
		}
	}
	mu.Unlock()

	// a producer without permission for the topic is refused
	bad, err := nsq.NewProducer(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad.SetLogger(newCLLogger(t, "bad producer: "), nsq.LogLevelError+1)
	t.Cleanup(bad.Stop)
	if err := bad.Publish("banana", []byte("x")); err == nil ||
		!strings.Contains(err.Error(), `E_UNAUTHORIZED AUTH failed for PUB on "banana" ""`) {
		t.Errorf("publish to banana: %v", err)
	}
	// and one without a secret cannot connect
	noSecret, err := nsq.NewProducer(addr, nsq.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	noSecret.SetLogger(newCLLogger(t, "no-secret producer: "), nsq.LogLevelError+1)
	t.Cleanup(noSecret.Stop)
	if err := noSecret.Publish("apple", []byte("x")); err == nil {
		t.Error("publish without a secret succeeded")
	}
}

// Exit does not wait for a slow auth server: queries in flight are
// cancelled (the client gets E_AUTH_FAILED or a closed connection).
func TestAuthExitCancelsQuery(t *testing.T) {
	arrived := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	n, addr := startAuthNSQD(t, []string{slow.Listener.Addr().String()}, func(o *nsqd.Options) {
		o.HTTPClientRequestTimeout = 60 * time.Second
	})
	c := dialV2(t, addr)
	c.write(authCmd("good"))
	select {
	case <-arrived:
	case <-time.After(ioTimeout):
		t.Fatal("auth server not queried")
	}
	start := time.Now()
	n.Exit()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Exit took %v with an auth query in flight", d)
	}
}

// D-AUTH-03: https:// auth servers are trusted through --tls-root-ca-file,
// and a 403 on http:// is retried on https://host:<https_port>.
func TestAuthHTTPS(t *testing.T) {
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, authAnswers["good"].body)
	}))
	t.Cleanup(secure.Close)
	_, port, _ := net.SplitHostPort(secure.Listener.Addr().String())
	var plainHits sync.Map
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Store(r.URL.RequestURI(), true)
		w.WriteHeader(403)
		fmt.Fprintf(w, `{"https_port":%s}`, port)
	}))
	t.Cleanup(plain.Close)

	caFile := t.TempDir() + "/ca.pem"
	pemBytes := pemEncodeCert(secure.Certificate().Raw)
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, addr, ca, want string
	}{
		{"https with root CA", secure.URL, caFile, authGoodResponse},
		{"403 retried on https", plain.Listener.Addr().String(), caFile, authGoodResponse},
		{"https without root CA", secure.URL, "", "E_AUTH_FAILED AUTH failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startAuthNSQD(t, []string{tc.addr}, func(o *nsqd.Options) { o.TLSRootCAFile = tc.ca })
			c := dialV2(t, addr)
			c.write(authCmd("good"))
			f := c.readFrame()
			if string(f.data) != tc.want {
				t.Fatalf("got %v, want %q", f, tc.want)
			}
		})
	}
	if _, ok := plainHits.Load("/auth?common_name=&remote_ip=127.0.0.1&secret=good&tls=false"); !ok {
		t.Error("plain server not asked first")
	}
}

func pemEncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// D-AUTH-01 with TLS: the auth request carries the client certificate's
// common name and tls=true.
func TestAuthRequestOverTLS(t *testing.T) {
	f := newAuthFake(t)
	pki := tlNewPKI(t)
	_, addr, _ := tlStart(t, func(o *nsqd.Options) {
		pki.serverOpts(o)
		o.TLSClientAuthPolicy = "require" // else no client cert is asked for
		o.AuthHTTPAddresses = []string{f.addr()}
	})
	s, br := tlDial(t, addr)
	if r := s.identify(`{"feature_negotiation":true,"tls_v1":true}`); !r.TLSv1 {
		t.Fatalf("tls_v1 not granted: %+v", r)
	}
	ts, _ := s.upgradeTLS(br, pki.clientConfig(pki.client))
	ts.send(authCmd("good"))
	ts.expect(frameTypeResponse, authGoodResponse)

	reqs := f.requests()
	want := "/auth?common_name=good+client&remote_ip=127.0.0.1&secret=good&tls=true"
	if len(reqs) != 1 || reqs[0].uri != want {
		t.Fatalf("auth requests %+v, want one for %s", reqs, want)
	}
}
