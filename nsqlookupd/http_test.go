package nsqlookupd

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	ctJSON = "application/json; charset=utf-8"
	ctText = "text/plain; charset=utf-8"
	ctNone = ""
	ctAny  = "*"
	skip   = "*" // do not compare the body
)

type httpStep struct {
	method, path string
	body         string // request body (form-encoded)
	code         int
	want         string // exact response body, or skip
	ctype        string
	nsq          bool   // X-NSQ-Content-Type: nsq; version=1.0 present
	allow        string // Allow header
	location     string // Location header
}

func runSteps(t *testing.T, l *NSQLookupd, steps []httpStep) {
	t.Helper()
	for i, s := range steps {
		r := doHTTP(t, l, s.method, s.path, s.body)
		where := fmt.Sprintf("step %d: %s %s", i, s.method, s.path)
		if r.code != s.code {
			t.Errorf("%s: status %d, want %d (body %s)", where, r.code, s.code, r.body)
		}
		if s.want != skip && r.body != s.want {
			t.Errorf("%s: body\n got %s\nwant %s", where, r.body, s.want)
		}
		if s.ctype != ctAny && r.header.Get("Content-Type") != s.ctype {
			t.Errorf("%s: Content-Type %q, want %q", where, r.header.Get("Content-Type"), s.ctype)
		}
		vals := r.header.Values("X-NSQ-Content-Type")
		if s.nsq && (len(vals) != 1 || vals[0] != "nsq; version=1.0") {
			t.Errorf("%s: X-NSQ-Content-Type = %q, want nsq; version=1.0", where, vals)
		}
		if !s.nsq && len(vals) != 0 {
			t.Errorf("%s: unexpected X-NSQ-Content-Type %q", where, vals)
		}
		if got := r.header.Get("Allow"); got != s.allow {
			t.Errorf("%s: Allow %q, want %q", where, got, s.allow)
		}
		if got := r.header.Get("Location"); got != s.location {
			t.Errorf("%s: Location %q, want %q", where, got, s.location)
		}
	}
}

// ok200 is a V1 success with a JSON body.
func ok200(method, path, want string) httpStep {
	return httpStep{method: method, path: path, code: 200, want: want, ctype: ctJSON, nsq: true}
}

// empty200 is a V1 success with no body (and so no Content-Type).
func empty200(method, path string) httpStep {
	return httpStep{method: method, path: path, code: 200, want: "", ctype: ctNone, nsq: true}
}

// v1Err is a V1 error.
func v1Err(method, path string, code int, msg string) httpStep {
	return httpStep{method: method, path: path, code: code, want: `{"message":"` + msg + `"}`, ctype: ctJSON, nsq: true}
}

// L-HTTP-01..15, D-HTTP-01/02/03/06/08 for lookupd.
func TestHTTPRoutes(t *testing.T) {
	l, logs := startLookupd(t, nil)
	c := nsqdPeer(t, l, nil)
	c.cmd("REGISTER t1 c1")
	c.expect("OK")
	c.cmd("REGISTER t2")
	c.expect("OK")
	remote := c.LocalAddr().String()
	peerJSON := fmt.Sprintf(`"remote_address":%q,"hostname":"nsqd-host","broadcast_address":"nsqd.test",`+
		`"tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"zone-a","topology_region":"region-1"`, remote)
	lastUpdate := l.DB().Producers(ClientRegistration)[0].Peer.LastUpdate().UnixNano()
	debugEntry := func(tombstoned bool, at int64) string {
		return fmt.Sprintf(`{"broadcast_address":"nsqd.test","hostname":"nsqd-host","http_port":4151,"id":%q,`+
			`"last_update":%d,"tcp_port":4150,"tombstoned":%v,"tombstoned_at":%d,`+
			`"topology_region":"region-1","topology_zone":"zone-a","version":"1.3.0"}`, remote, lastUpdate, tombstoned, at)
	}
	const zeroTime = -6795364578871345152
	e := debugEntry(false, zeroTime)

	runSteps(t, l, []httpStep{
		// L-HTTP-01: plain text, no X-NSQ header.
		{method: "GET", path: "/ping", code: 200, want: "OK", ctype: ctText},
		// L-HTTP-02
		ok200("GET", "/info", `{"version":"1.3.0"}`),
		// L-HTTP-03
		ok200("GET", "/topics", `{"topics":["t1","t2"]}`),
		// L-HTTP-04
		v1Err("GET", "/channels", 400, "MISSING_ARG_TOPIC"),
		ok200("GET", "/channels?topic=t1", `{"channels":["c1"]}`),
		ok200("GET", "/channels?topic=nope", `{"channels":[]}`),
		ok200("GET", "/channels?topic=", `{"channels":[]}`),
		// L-HTTP-05
		v1Err("GET", "/lookup", 400, "MISSING_ARG_TOPIC"),
		v1Err("GET", "/lookup?topic=nope", 404, "TOPIC_NOT_FOUND"),
		v1Err("GET", "/lookup?topic=%zz", 400, "INVALID_REQUEST"),
		ok200("GET", "/lookup?topic=t1", `{"channels":["c1"],"producers":[{`+peerJSON+`}]}`),
		ok200("GET", "/lookup?topic=t1&topic=t2", `{"channels":["c1"],"producers":[{`+peerJSON+`}]}`),
		ok200("GET", "/lookup?topic=t2", `{"channels":[],"producers":[{`+peerJSON+`}]}`),
		// D-HTTP-04: the Accept negotiation of old clients changes nothing
		// (covered implicitly: no handler reads Accept).
		// L-HTTP-06
		ok200("GET", "/nodes", `{"producers":[{`+peerJSON+`,"tombstones":[false,false],"topics":["t1","t2"]}]}`),
		// L-HTTP-07: keys sorted, empty keys omitted.
		ok200("GET", "/debug", `{"channel:t1:c1":[`+e+`],"client::":[`+e+`],"topic:t1:":[`+e+`],"topic:t2:":[`+e+`]}`),

		// L-HTTP-08
		v1Err("POST", "/topic/create", 400, "MISSING_ARG_TOPIC"),
		{method: "POST", path: "/topic/create", body: "topic=x", code: 400, want: `{"message":"MISSING_ARG_TOPIC"}`, ctype: ctJSON, nsq: true},
		v1Err("POST", "/topic/create?topic=b@d", 400, "INVALID_ARG_TOPIC"),
		v1Err("POST", "/topic/create?topic=", 400, "INVALID_ARG_TOPIC"),
		empty200("POST", "/topic/create?topic=t3"),
		empty200("POST", "/topic/create?topic=t3"),
		ok200("GET", "/topics", `{"topics":["t1","t2","t3"]}`),
		ok200("GET", "/lookup?topic=t3", `{"channels":[],"producers":[]}`),

		// L-HTTP-10
		v1Err("POST", "/channel/create", 400, "MISSING_ARG_TOPIC"),
		v1Err("POST", "/channel/create?topic=b@d&channel=c", 400, "INVALID_ARG_TOPIC"),
		v1Err("POST", "/channel/create?topic=t4", 400, "MISSING_ARG_CHANNEL"),
		v1Err("POST", "/channel/create?topic=t4&channel=b@d", 400, "INVALID_ARG_CHANNEL"),
		empty200("POST", "/channel/create?topic=t4&channel=c4"),
		empty200("POST", "/channel/create?topic=t4&channel=c5%23ephemeral"),
		ok200("GET", "/topics", `{"topics":["t1","t2","t3","t4"]}`),
		ok200("GET", "/channels?topic=t4", `{"channels":["c4","c5#ephemeral"]}`),
		ok200("GET", "/lookup?topic=t4", `{"channels":["c4","c5#ephemeral"],"producers":[]}`),

		// L-HTTP-11
		v1Err("POST", "/channel/delete", 400, "MISSING_ARG_TOPIC"),
		v1Err("POST", "/channel/delete?topic=b@d&channel=c", 400, "INVALID_ARG_TOPIC"),
		v1Err("POST", "/channel/delete?topic=t4", 400, "MISSING_ARG_CHANNEL"),
		v1Err("POST", "/channel/delete?topic=t4&channel=b@d", 400, "INVALID_ARG_CHANNEL"),
		v1Err("POST", "/channel/delete?topic=t4&channel=nope", 404, "CHANNEL_NOT_FOUND"),
		empty200("POST", "/channel/delete?topic=t4&channel=c4"),
		v1Err("POST", "/channel/delete?topic=t4&channel=c4", 404, "CHANNEL_NOT_FOUND"),
		ok200("GET", "/channels?topic=t4", `{"channels":["c5#ephemeral"]}`),

		// L-HTTP-09: no validation, idempotent, channels go too.
		v1Err("POST", "/topic/delete", 400, "MISSING_ARG_TOPIC"),
		empty200("POST", "/topic/delete?topic=t4"),
		empty200("POST", "/topic/delete?topic=never"),
		empty200("POST", "/topic/delete?topic=b@d"),
		empty200("POST", "/topic/delete?topic=*"), // literal, not a wildcard
		ok200("GET", "/topics", `{"topics":["t1","t2","t3"]}`),
		ok200("GET", "/channels?topic=t4", `{"channels":[]}`),

		// L-HTTP-12
		v1Err("POST", "/topic/tombstone", 400, "MISSING_ARG_TOPIC"),
		v1Err("POST", "/topic/tombstone?topic=t1", 400, "MISSING_ARG_NODE"),
		empty200("POST", "/topic/tombstone?topic=t1&node=nomatch:1"),
		ok200("GET", "/lookup?topic=t1", `{"channels":["c1"],"producers":[{`+peerJSON+`}]}`),
		empty200("POST", "/topic/tombstone?topic=t1&node=nsqd.test:4151"),
		ok200("GET", "/lookup?topic=t1", `{"channels":["c1"],"producers":[]}`),
		ok200("GET", "/lookup?topic=t2", `{"channels":[],"producers":[{`+peerJSON+`}]}`),
		ok200("GET", "/nodes", `{"producers":[{`+peerJSON+`,"tombstones":[true,false],"topics":["t1","t2"]}]}`),

		// L-HTTP-14, D-HTTP-01: methods, OPTIONS, redirects.
		{method: "GET", path: "/topic/create", code: 405, want: `{"message":"METHOD_NOT_ALLOWED"}`, ctype: ctJSON, nsq: true, allow: "OPTIONS, POST"},
		{method: "DELETE", path: "/topic/create", code: 405, want: `{"message":"METHOD_NOT_ALLOWED"}`, ctype: ctJSON, nsq: true, allow: "OPTIONS, POST"},
		{method: "POST", path: "/lookup", code: 405, want: `{"message":"METHOD_NOT_ALLOWED"}`, ctype: ctJSON, nsq: true, allow: "GET, OPTIONS"},
		{method: "PUT", path: "/ping", code: 405, want: `{"message":"METHOD_NOT_ALLOWED"}`, ctype: ctJSON, nsq: true, allow: "GET, OPTIONS"},
		{method: "HEAD", path: "/ping", code: 405, want: "", ctype: ctJSON, nsq: true, allow: "GET, OPTIONS"},
		{method: "OPTIONS", path: "/lookup", code: 200, want: "", ctype: ctNone, allow: "GET, OPTIONS"},
		{method: "OPTIONS", path: "/topic/tombstone", code: 200, want: "", ctype: ctNone, allow: "OPTIONS, POST"},
		{method: "GET", path: "/ping/", code: 301, want: skip, ctype: ctAny, location: "/ping"},
		{method: "GET", path: "/LOOKUP?topic=t1", code: 301, want: skip, ctype: ctAny, location: "/lookup?topic=t1"},
		{method: "POST", path: "/topic/create/?topic=x", code: 307, want: skip, ctype: ctAny, location: "/topic/create?topic=x"},
		v1Err("GET", "/nope", 404, "NOT_FOUND"),
		v1Err("GET", "/", 404, "NOT_FOUND"),

		// L-HTTP-13: pprof.
		{method: "GET", path: "/debug/pprof", code: 200, want: skip, ctype: ctAny},
		{method: "GET", path: "/debug/pprof/", code: 301, want: skip, ctype: ctAny, location: "/debug/pprof"},
		{method: "GET", path: "/debug/pprof/cmdline", code: 200, want: skip, ctype: ctAny},
		{method: "GET", path: "/debug/pprof/symbol", code: 200, want: skip, ctype: ctAny},
		{method: "POST", path: "/debug/pprof/symbol", code: 200, want: skip, ctype: ctAny},
		{method: "GET", path: "/debug/pprof/heap?debug=1", code: 200, want: skip, ctype: ctAny},
		{method: "GET", path: "/debug/pprof/goroutine?debug=1", code: 200, want: skip, ctype: ctAny},
		{method: "GET", path: "/debug/pprof/block?debug=1", code: 200, want: skip, ctype: ctAny},
		{method: "GET", path: "/debug/pprof/threadcreate?debug=1", code: 200, want: skip, ctype: ctAny},
	})

	// L-HTTP-15: pre-1.0 routes are gone, for every method.
	var legacy []httpStep
	for _, p := range []string{"/delete_topic?topic=t1", "/delete_channel?topic=t1&channel=c1",
		"/create_topic?topic=x", "/create_channel?topic=x&channel=y",
		"/tombstone_topic_producer?topic=t1&node=nsqd.test:4151"} {
		legacy = append(legacy, v1Err("GET", p, 404, "NOT_FOUND"), v1Err("POST", p, 404, "NOT_FOUND"))
	}
	runSteps(t, l, legacy)
	if got := getBody(t, l, "/topics"); got != `{"topics":["t1","t2","t3"]}` {
		t.Errorf("legacy routes changed state: %s", got)
	}

	// /debug after the tombstone: raw flag and timestamp, topic key only.
	var dbg map[string][]map[string]interface{}
	if err := json.Unmarshal([]byte(getBody(t, l, "/debug")), &dbg); err != nil {
		t.Fatal(err)
	}
	if dbg["topic:t1:"][0]["tombstoned"] != true || dbg["topic:t1:"][0]["tombstoned_at"].(float64) <= 0 {
		t.Errorf("topic:t1: = %v", dbg["topic:t1:"])
	}
	if dbg["channel:t1:c1"][0]["tombstoned"] != false || dbg["topic:t2:"][0]["tombstoned"] != false {
		t.Errorf("tombstone leaked to other keys: %v", dbg)
	}

	// D-HTTP-08: access log; pprof routes are not logged.
	for _, want := range []string{
		"INFO: 200 GET /lookup?topic=t1 (127.0.0.1:",
		"INFO: 404 GET /lookup?topic=nope (127.0.0.1:",
		"INFO: 405 GET /topic/create (127.0.0.1:",
		"INFO: 404 POST /create_topic?topic=x (127.0.0.1:",
		"INFO: 200 GET /ping (127.0.0.1:",
		"INFO: DB: setting tombstone for producer@nsqd.test:4151 of topic(t1)",
		"INFO: DB: removing channel(c5#ephemeral) from topic(t4)",
		"INFO: DB: removing topic(t4)",
		"INFO: DB: adding channel(c4) in topic(t4)",
		"INFO: DB: adding topic(t3)",
	} {
		if !logs.contains(want) {
			t.Errorf("no log line containing %q", want)
		}
	}
	if logs.contains("/debug/pprof") {
		t.Error("pprof request was access-logged")
	}
}

// L-HTTP-03, L-HTTP-06, L-DB-02: an empty lookupd answers [] not null.
func TestHTTPEmpty(t *testing.T) {
	l, _ := startLookupd(t, nil)
	runSteps(t, l, []httpStep{
		ok200("GET", "/topics", `{"topics":[]}`),
		ok200("GET", "/nodes", `{"producers":[]}`),
		ok200("GET", "/debug", `{}`),
	})
	// A peer with no topics: both arrays present and empty.
	nsqdPeer(t, l, nil)
	body := getBody(t, l, "/nodes")
	if !strings.HasSuffix(body, `,"tombstones":[],"topics":[]}]}`) {
		t.Fatalf("/nodes = %s", body)
	}
}

// L-DB-04, L-CLI-09: inactive producers vanish from /lookup and /nodes
// (not from /topics) and come back after a PING.
func TestHTTPInactiveProducers(t *testing.T) {
	l, _ := startLookupd(t, func(o *Options) { o.InactiveProducerTimeout = 500 * time.Millisecond })
	c := nsqdPeer(t, l, nil)
	c.cmd("REGISTER t")
	c.expect("OK")
	if got := getBody(t, l, "/lookup?topic=t"); !strings.Contains(got, `"producers":[{`) {
		t.Fatalf("fresh producer missing: %s", got)
	}
	eventually(t, "producer inactive", func() bool {
		return getBody(t, l, "/lookup?topic=t") == `{"channels":[],"producers":[]}`
	})
	if got := getBody(t, l, "/nodes"); got != `{"producers":[]}` {
		t.Fatalf("/nodes = %s", got)
	}
	if got := getBody(t, l, "/topics"); got != `{"topics":["t"]}` {
		t.Fatalf("/topics = %s", got)
	}
	c.cmd("PING")
	c.expect("OK")
	if got := getBody(t, l, "/lookup?topic=t"); !strings.Contains(got, `"producers":[{`) {
		t.Fatalf("producer not back after PING: %s", got)
	}
	if got := getBody(t, l, "/nodes"); !strings.Contains(got, `"topics":["t"]`) {
		t.Fatalf("/nodes after PING = %s", got)
	}
}

// L-DB-05, L-CLI-10: a tombstone hides the producer from /lookup for the
// lifetime only; re-REGISTER does not clear it; /debug keeps the raw flag.
func TestHTTPTombstoneLifetime(t *testing.T) {
	const lifetime = 400 * time.Millisecond
	l, _ := startLookupd(t, func(o *Options) { o.TombstoneLifetime = lifetime })
	a := nsqdPeer(t, l, map[string]interface{}{"broadcast_address": "a"})
	b := nsqdPeer(t, l, map[string]interface{}{"broadcast_address": "b"})
	for _, c := range []*v1conn{a, b} {
		c.cmd("REGISTER t c")
		c.expect("OK")
	}
	runSteps(t, l, []httpStep{empty200("POST", "/topic/tombstone?topic=t&node=a:4151")})
	start := time.Now()
	a.cmd("REGISTER t c")
	a.expect("OK")

	producers := func() []string {
		var out struct {
			Channels  []string
			Producers []struct {
				BroadcastAddress string `json:"broadcast_address"`
			}
		}
		if err := json.Unmarshal([]byte(getBody(t, l, "/lookup?topic=t")), &out); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(out.Channels) != "[c]" {
			t.Fatalf("channels %v: tombstones must not hide channels", out.Channels)
		}
		var names []string
		for _, p := range out.Producers {
			names = append(names, p.BroadcastAddress)
		}
		return names
	}
	if got := producers(); fmt.Sprint(got) != "[b]" && time.Since(start) < lifetime {
		t.Fatalf("during lifetime: %v", got)
	}
	eventually(t, "tombstone expiry", func() bool { return len(producers()) == 2 })
	if time.Since(start) < lifetime/2 {
		t.Fatal("tombstone expired too early")
	}
	if got := getBody(t, l, "/debug"); !strings.Contains(got, `"tombstoned":true`) {
		t.Fatalf("raw flag lost: %s", got)
	}
}
