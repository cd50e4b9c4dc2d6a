// Package cluster runs nsqd and nsqlookupd together and checks discovery end
// to end: nsqd's lookup loop (spec section 5, D-LKP-01..12), channel
// pre-creation from lookupd (D-TOPIC-01) and what lookupd then serves
// (L-DB-03/04/05, L-TCP-09/10, L-HTTP-03..06/12). The daemons run in-process
// here; binaries_test.go does the same with the built binaries, and
// nsqtools_test.go runs NSQ's own tools (nsqadmin, nsq_tail, …) against them.
//
// Every wait is a poll with a deadline; every address is 127.0.0.1 with a
// kernel-chosen port (or a port picked free just before use).
package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/nsqd"
	"github.com/ournsq/nsq/nsqlookupd"
	"github.com/ournsq/nsq/test/internal/daemons"
)

// waitLimit bounds every poll; generous for -race on a loaded box, never
// reached when things work.
const waitLimit = 10 * time.Second

// ---------------------------------------------------------------------------
// logging

// tLogger forwards daemon and go-nsq log lines to t.Log until the test ends
// (its cleanup is registered before the daemons', so it runs after them),
// and keeps them, with when they came, for tests that check the log.
type tLogger struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	closed bool
	lines  []string
	at     []time.Time
}

func newTLogger(t testing.TB, prefix string) *tLogger {
	l := &tLogger{t: t, prefix: prefix}
	t.Cleanup(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
	})
	return l
}

func (l *tLogger) Output(_ int, s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	l.at = append(l.at, time.Now())
	if !l.closed {
		l.t.Log(l.prefix + s)
	}
	return nil
}

// times returns when each line containing sub was logged.
func (l *tLogger) times(sub string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ts []time.Time
	for i, s := range l.lines {
		if strings.Contains(s, sub) {
			ts = append(ts, l.at[i])
		}
	}
	return ts
}

// has reports whether a line containing sub was logged.
func (l *tLogger) has(sub string) bool { return len(l.times(sub)) > 0 }

var _ lg.Logger = (*tLogger)(nil)

// ---------------------------------------------------------------------------
// daemons

type lookupd struct {
	*nsqlookupd.NSQLookupd
	tcpAddr  string // 127.0.0.1:port
	httpAddr string
	httpPort int
	stopOnce sync.Once
	mainDone chan struct{}
}

func (l *lookupd) stop() {
	l.stopOnce.Do(func() {
		l.Exit()
		select {
		case <-l.mainDone:
		case <-time.After(waitLimit):
			panic("nsqlookupd Main did not return after Exit")
		}
	})
}

func lookupdOpts(t testing.TB, name string) *nsqlookupd.Options {
	opts := nsqlookupd.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.BroadcastAddress = "127.0.0.1"
	opts.Logger = newTLogger(t, name+": ")
	return opts
}

// startLookupd starts an nsqlookupd with lookupdOpts, changed by mod.
func startLookupd(t testing.TB, name string, mod func(*nsqlookupd.Options)) *lookupd {
	t.Helper()
	opts := lookupdOpts(t, name)
	if mod != nil {
		mod(opts)
	}
	l, err := newLookupd(opts, nil)
	if err != nil {
		t.Fatalf("nsqlookupd.New: %v", err)
	}
	t.Cleanup(l.stop)
	return l
}

// newLookupd binds an nsqlookupd, runs beforeMain (if any) and serves.
func newLookupd(opts *nsqlookupd.Options, beforeMain func(*nsqlookupd.NSQLookupd)) (*lookupd, error) {
	n, err := nsqlookupd.New(opts)
	if err != nil {
		return nil, err
	}
	if beforeMain != nil {
		beforeMain(n)
	}
	l := &lookupd{
		NSQLookupd: n,
		tcpAddr:    n.RealTCPAddr().String(),
		httpAddr:   n.RealHTTPAddr().String(),
		httpPort:   n.RealHTTPAddr().Port,
		mainDone:   make(chan struct{}),
	}
	go func() {
		defer close(l.mainDone)
		n.Main()
	}()
	return l, nil
}

type nsqdNode struct {
	*nsqd.NSQD
	tcpAddr  string
	httpAddr string
	tcpPort  int
	httpPort int
	stopOnce sync.Once
	mainDone chan struct{}
}

func (n *nsqdNode) stop() {
	n.stopOnce.Do(func() {
		n.Exit()
		select {
		case <-n.mainDone:
		case <-time.After(waitLimit):
			panic("nsqd Main did not return after Exit")
		}
	})
}

// startNSQD starts an nsqd on loopback port 0, registered with the given
// lookupd TCP addresses and broadcasting 127.0.0.1 (D-LKP-10).
func startNSQD(t testing.TB, name string, lookupdTCP []string, mod func(*nsqd.Options)) *nsqdNode {
	t.Helper()
	opts := nsqd.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.DataPath = t.TempDir()
	opts.BroadcastAddress = "127.0.0.1"
	opts.NSQLookupdTCPAddresses = slices.Clone(lookupdTCP)
	opts.Logger = newTLogger(t, name+": ")
	if mod != nil {
		mod(opts)
	}
	n, err := nsqd.New(opts)
	if err != nil {
		t.Fatalf("nsqd.New: %v", err)
	}
	node := &nsqdNode{
		NSQD:     n,
		tcpAddr:  n.RealTCPAddr().String(),
		httpAddr: n.RealHTTPAddr().String(),
		tcpPort:  n.RealTCPAddr().(*net.TCPAddr).Port,
		httpPort: n.RealHTTPAddr().(*net.TCPAddr).Port,
		mainDone: make(chan struct{}),
	}
	go func() {
		defer close(node.mainDone)
		n.Main()
	}()
	t.Cleanup(node.stop)
	return node
}

// ---------------------------------------------------------------------------
// HTTP

var httpClient = &http.Client{Timeout: 5 * time.Second}

func doHTTP(t testing.TB, method, u, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp.StatusCode, b
}

// mustHTTP requires a 200 answer.
func mustHTTP(t testing.TB, method, u, body string) []byte {
	t.Helper()
	code, b := doHTTP(t, method, u, body)
	if code != 200 {
		t.Fatalf("%s %s: status %d, body %q", method, u, code, b)
	}
	return b
}

func getJSON(t testing.TB, u string, v interface{}) int {
	t.Helper()
	code, b := doHTTP(t, "GET", u, "")
	if code == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: decoding %q: %v", u, b, err)
		}
	}
	return code
}

func q(s string) string { return url.QueryEscape(s) }

// ---------------------------------------------------------------------------
// lookupd views

// producer is one /lookup producer (L-HTTP-05).
type producer struct {
	RemoteAddress    string `json:"remote_address"`
	Hostname         string `json:"hostname"`
	BroadcastAddress string `json:"broadcast_address"`
	TCPPort          int    `json:"tcp_port"`
	HTTPPort         int    `json:"http_port"`
	Version          string `json:"version"`
	TopologyZone     string `json:"topology_zone"`
	TopologyRegion   string `json:"topology_region"`
}

type lookupResp struct {
	Channels  []string   `json:"channels"`
	Producers []producer `json:"producers"`
}

// node is one /nodes entry (L-HTTP-06).
type node struct {
	producer
	Tombstones []bool   `json:"tombstones"`
	Topics     []string `json:"topics"`
}

func (l *lookupd) lookup(t testing.TB, topic string) (int, lookupResp) {
	t.Helper()
	var r lookupResp
	code := getJSON(t, "http://"+l.httpAddr+"/lookup?topic="+q(topic), &r)
	return code, r
}

// lookupTCPPorts is the sorted list of producer TCP ports /lookup returns
// for topic (nil on a non-200 answer).
func (l *lookupd) lookupTCPPorts(t testing.TB, topic string) []int {
	t.Helper()
	code, r := l.lookup(t, topic)
	if code != 200 {
		return nil
	}
	ports := []int{}
	for _, p := range r.Producers {
		ports = append(ports, p.TCPPort)
	}
	sort.Ints(ports)
	return ports
}

func (l *lookupd) nodes(t testing.TB) []node {
	t.Helper()
	var r struct {
		Producers []node `json:"producers"`
	}
	if code := getJSON(t, "http://"+l.httpAddr+"/nodes", &r); code != 200 {
		t.Fatalf("GET /nodes: status %d", code)
	}
	return r.Producers
}

func (l *lookupd) topics(t testing.TB) []string {
	t.Helper()
	var r struct {
		Topics []string `json:"topics"`
	}
	if code := getJSON(t, "http://"+l.httpAddr+"/topics", &r); code != 200 {
		t.Fatalf("GET /topics: status %d", code)
	}
	sort.Strings(r.Topics)
	return r.Topics
}

func (l *lookupd) channels(t testing.TB, topic string) []string {
	t.Helper()
	var r struct {
		Channels []string `json:"channels"`
	}
	if code := getJSON(t, "http://"+l.httpAddr+"/channels?topic="+q(topic), &r); code != 200 {
		t.Fatalf("GET /channels: status %d", code)
	}
	sort.Strings(r.Channels)
	return r.Channels
}

// debugTCPPorts is, for one registration key of /debug (L-HTTP-07, e.g.
// "channel:t:c"), the sorted TCP ports of its producers; /debug omits empty
// registrations, so a key without producers gives an empty list.
func (l *lookupd) debugTCPPorts(t testing.TB, key string) []int {
	t.Helper()
	var r map[string][]struct {
		TCPPort int `json:"tcp_port"`
	}
	if code := getJSON(t, "http://"+l.httpAddr+"/debug", &r); code != 200 {
		t.Fatalf("GET /debug: status %d", code)
	}
	ports := []int{}
	for _, p := range r[key] {
		ports = append(ports, p.TCPPort)
	}
	sort.Ints(ports)
	return ports
}

// ---------------------------------------------------------------------------
// nsqd views

type channelStats struct {
	ChannelName  string `json:"channel_name"`
	Depth        int64  `json:"depth"`
	MessageCount uint64 `json:"message_count"`
	ClientCount  int    `json:"client_count"`
}

type topicStats struct {
	TopicName    string         `json:"topic_name"`
	Depth        int64          `json:"depth"`
	MessageCount uint64         `json:"message_count"`
	Channels     []channelStats `json:"channels"`
}

func (n *nsqdNode) stats(t testing.TB) []topicStats {
	t.Helper()
	var r struct {
		Topics []topicStats `json:"topics"`
	}
	if code := getJSON(t, "http://"+n.httpAddr+"/stats?format=json", &r); code != 200 {
		t.Fatalf("nsqd GET /stats: status %d", code)
	}
	return r.Topics
}

func (n *nsqdNode) topicStats(t testing.TB, topic string) (topicStats, bool) {
	t.Helper()
	for _, ts := range n.stats(t) {
		if ts.TopicName == topic {
			return ts, true
		}
	}
	return topicStats{}, false
}

func channelNames(ts topicStats) []string {
	names := []string{}
	for _, c := range ts.Channels {
		names = append(names, c.ChannelName)
	}
	sort.Strings(names)
	return names
}

func (n *nsqdNode) post(t testing.TB, path string) {
	t.Helper()
	mustHTTP(t, "POST", "http://"+n.httpAddr+path, "")
}

// createChannel creates topic (if needed) and channel over HTTP; nsqd's
// /channel/create wants an existing topic (D-HTTP-29).
func (n *nsqdNode) createChannel(t testing.TB, topic, channel string) {
	t.Helper()
	n.post(t, "/topic/create?topic="+q(topic))
	n.post(t, "/channel/create?topic="+q(topic)+"&channel="+q(channel))
}

func (n *nsqdNode) pub(t testing.TB, topic, body string) {
	t.Helper()
	b := mustHTTP(t, "POST", "http://"+n.httpAddr+"/pub?topic="+q(topic), body)
	if string(b) != "OK" {
		t.Fatalf("nsqd /pub: body %q, want OK", b)
	}
}

// ---------------------------------------------------------------------------
// polling

// eventually polls cond until it reports true or limit passes; state
// describes what was last seen, for the failure message.
func eventually(t testing.TB, limit time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", limit, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func intsEqual(a, b []int) bool    { return slices.Equal(a, b) }
func sortedInts(v ...int) []int    { s := slices.Clone(v); sort.Ints(s); return s }
func strsEqual(a, b []string) bool { return slices.Equal(a, b) }

// waitLookupPorts waits until /lookup?topic= on l returns exactly the
// producers with these TCP ports.
func waitLookupPorts(t testing.TB, l *lookupd, topic string, ports ...int) {
	t.Helper()
	want := sortedInts(ports...)
	eventually(t, waitLimit, fmt.Sprintf("/lookup?topic=%s on %s to list producers %v", topic, l.httpAddr, want),
		func() (bool, string) {
			got := l.lookupTCPPorts(t, topic)
			return got != nil && intsEqual(got, want), fmt.Sprintf("%v", got)
		})
}

func waitChannels(t testing.TB, l *lookupd, topic string, want ...string) {
	t.Helper()
	want = slices.Clone(want)
	sort.Strings(want)
	eventually(t, waitLimit, fmt.Sprintf("/channels?topic=%s on %s to be %v", topic, l.httpAddr, want),
		func() (bool, string) {
			got := l.channels(t, topic)
			return strsEqual(got, want), fmt.Sprintf("%v", got)
		})
}

func waitDebugPorts(t testing.TB, l *lookupd, key string, ports ...int) {
	t.Helper()
	want := sortedInts(ports...)
	eventually(t, waitLimit, fmt.Sprintf("/debug key %q on %s to hold producers %v", key, l.httpAddr, want),
		func() (bool, string) {
			got := l.debugTCPPorts(t, key)
			return intsEqual(got, want), fmt.Sprintf("%v", got)
		})
}

// objectKeys lists the keys of a JSON object in document order.
func objectKeys(t testing.TB, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("decoding %s: %v", raw, err)
		}
	}
	return keys
}

// ---------------------------------------------------------------------------
// go-nsq

type collector struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
}

func (c *collector) HandleMessage(m *nsq.Message) error {
	c.mu.Lock()
	c.seen[string(m.Body)]++
	c.total++
	c.mu.Unlock()
	return nil
}

func (c *collector) snapshot() (distinct, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.total
}

// newConsumer returns a started-but-unconnected consumer; it is stopped at
// cleanup if the test did not stop it.
func newConsumer(t testing.TB, topic, channel string, h nsq.Handler) *nsq.Consumer {
	t.Helper()
	cfg := nsq.NewConfig()
	cfg.LookupdPollInterval = 200 * time.Millisecond
	cfg.MaxInFlight = 10
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		t.Fatalf("nsq.NewConsumer: %v", err)
	}
	c.SetLogger(newTLogger(t, "go-nsq: "), nsq.LogLevelWarning)
	c.AddHandler(h)
	t.Cleanup(func() { stopConsumer(t, c) })
	return c
}

func stopConsumer(t testing.TB, c *nsq.Consumer) {
	c.Stop()
	select {
	case <-c.StopChan:
	case <-time.After(waitLimit):
		t.Errorf("go-nsq consumer did not stop")
	}
}

// ---------------------------------------------------------------------------
// 1. two lookupds, two nsqds

// D-LKP-01/02/04/05/10, L-HTTP-05/06, A (go-nsq discovery): every nsqd
// registers with every lookupd; each lookupd lists both producers with the
// fields consumers need; a go-nsq consumer that knows only the lookupds gets
// exactly the messages published to both nsqds.
func TestTwoLookupdsTwoNSQDs(t *testing.T) {
	t.Parallel()
	l1 := startLookupd(t, "lookupd1", nil)
	l2 := startLookupd(t, "lookupd2", nil)
	lookupds := []*lookupd{l1, l2}
	addrs := []string{l1.tcpAddr, l2.tcpAddr}
	n1 := startNSQD(t, "nsqd1", addrs, nil)
	n2 := startNSQD(t, "nsqd2", addrs, nil)
	nodes := []*nsqdNode{n1, n2}

	const topic = "multi"
	const perNode = 20
	want := map[string]bool{}
	for i, n := range nodes {
		for j := 0; j < perNode; j++ {
			body := fmt.Sprintf("nsqd%d-msg%02d", i+1, j)
			n.pub(t, topic, body)
			want[body] = true
		}
	}

	hostname, _ := os.Hostname()
	httpPortOf := map[int]int{n1.tcpPort: n1.httpPort, n2.tcpPort: n2.httpPort}
	for _, l := range lookupds {
		waitLookupPorts(t, l, topic, n1.tcpPort, n2.tcpPort)

		code, raw := doHTTP(t, "GET", "http://"+l.httpAddr+"/lookup?topic="+topic, "")
		if code != 200 {
			t.Fatalf("lookupd %s /lookup: %d %s", l.httpAddr, code, raw)
		}
		var r struct {
			Channels  []string          `json:"channels"`
			Producers []json.RawMessage `json:"producers"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		for _, pr := range r.Producers {
			wantKeys := []string{"remote_address", "hostname", "broadcast_address", "tcp_port",
				"http_port", "version", "topology_zone", "topology_region"}
			if keys := objectKeys(t, pr); !strsEqual(keys, wantKeys) {
				t.Errorf("L-HTTP-05 lookupd %s producer keys %v, want %v", l.httpAddr, keys, wantKeys)
			}
			var p producer
			if err := json.Unmarshal(pr, &p); err != nil {
				t.Fatal(err)
			}
			if p.BroadcastAddress != "127.0.0.1" || p.Version != "1.3.0" || p.HTTPPort != httpPortOf[p.TCPPort] ||
				p.Hostname != hostname || !strings.HasPrefix(p.RemoteAddress, "127.0.0.1:") {
				t.Errorf("D-LKP-02/L-HTTP-05 lookupd %s producer %+v: want broadcast_address 127.0.0.1, "+
					"version 1.3.0, http_port %d, hostname %q, remote_address 127.0.0.1:*",
					l.httpAddr, p, httpPortOf[p.TCPPort], hostname)
			}
		}

		// /nodes: both nsqds, each with the topic (L-HTTP-06)
		ns := l.nodes(t)
		var ports []int
		for _, nd := range ns {
			ports = append(ports, nd.TCPPort)
			if !slices.Contains(nd.Topics, topic) || len(nd.Tombstones) != len(nd.Topics) {
				t.Errorf("lookupd %s /nodes entry %+v: want topic %q and as many tombstones as topics",
					l.httpAddr, nd, topic)
			}
		}
		sort.Ints(ports)
		if !intsEqual(ports, sortedInts(n1.tcpPort, n2.tcpPort)) {
			t.Errorf("lookupd %s /nodes tcp ports %v, want %v", l.httpAddr, ports, sortedInts(n1.tcpPort, n2.tcpPort))
		}
	}

	// a consumer that only knows the lookupds
	col := &collector{seen: map[string]int{}}
	c := newConsumer(t, topic, "ch", col)
	for _, l := range lookupds {
		if err := c.ConnectToNSQLookupd("http://" + l.httpAddr); err != nil {
			t.Fatalf("ConnectToNSQLookupd: %v", err)
		}
	}
	eventually(t, waitLimit, fmt.Sprintf("%d messages from both nsqds", len(want)), func() (bool, string) {
		d, tot := col.snapshot()
		return d == len(want), fmt.Sprintf("%d distinct, %d total, %d connections", d, tot, c.Stats().Connections)
	})
	// give late extras (duplicates, strays) a chance to show up
	time.Sleep(300 * time.Millisecond)
	col.mu.Lock()
	for body, k := range col.seen {
		if !want[body] {
			t.Errorf("received unexpected message %q", body)
		}
		if k != 1 {
			t.Errorf("message %q received %d times", body, k)
		}
	}
	if col.total != len(want) {
		t.Errorf("received %d messages, want exactly %d", col.total, len(want))
	}
	col.mu.Unlock()
	if got := c.Stats().Connections; got != 2 {
		t.Errorf("consumer has %d nsqd connections, want 2 (one per producer found via lookupd)", got)
	}
}

// ---------------------------------------------------------------------------
// 2. REGISTER / UNREGISTER follow the topology

// D-LKP-04/05, D-CHAN-01/02, D-EPH-01/02, D-TOPIC-04, L-TCP-08/09,
// L-DB-03: every change on nsqd shows up in lookupd.
func TestRegistrationFollowsChanges(t *testing.T) {
	t.Parallel()
	l := startLookupd(t, "lookupd", nil)
	n := startNSQD(t, "nsqd", []string{l.tcpAddr}, nil)

	const topic = "reg"
	// topic without channels: REGISTER reg
	n.post(t, "/topic/create?topic="+topic)
	waitLookupPorts(t, l, topic, n.tcpPort)
	waitDebugPorts(t, l, "topic:"+topic+":", n.tcpPort)
	if got := l.channels(t, topic); len(got) != 0 {
		t.Errorf("/channels?topic=%s = %v before any channel, want []", topic, got)
	}

	// new channel: REGISTER reg c1 (D-CHAN-01)
	n.createChannel(t, topic, "c1")
	waitChannels(t, l, topic, "c1")
	waitDebugPorts(t, l, "channel:"+topic+":c1", n.tcpPort)

	// deleted channel (in-process API): UNREGISTER reg c1 removes this
	// producer from the channel; the non-ephemeral key lingers (L-DB-03)
	tp, err := n.GetExistingTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.DeleteExistingChannel("c1"); err != nil {
		t.Fatal(err)
	}
	waitDebugPorts(t, l, "channel:"+topic+":c1")
	if got := l.channels(t, topic); !strsEqual(got, []string{"c1"}) {
		t.Errorf("L-DB-03: /channels?topic=%s = %v after channel delete, want [c1] (empty key lingers)", topic, got)
	}
	if got := l.lookupTCPPorts(t, topic); !intsEqual(got, []int{n.tcpPort}) {
		t.Errorf("deleting a channel must not unregister the topic: /lookup ports %v, want [%d]", got, n.tcpPort)
	}

	// ephemeral channel: registered while a consumer is subscribed,
	// unregistered (key deleted, L-TCP-09) once it leaves (D-EPH-02)
	const eph = "eph#ephemeral"
	c := newConsumer(t, topic, eph, nsq.HandlerFunc(func(*nsq.Message) error { return nil }))
	if err := c.ConnectToNSQD(n.tcpAddr); err != nil {
		t.Fatal(err)
	}
	waitChannels(t, l, topic, "c1", eph)
	waitDebugPorts(t, l, "channel:"+topic+":"+eph, n.tcpPort)
	stopConsumer(t, c)
	waitChannels(t, l, topic, "c1")

	// ephemeral topic: goes with its last channel (D-EPH-01) and its
	// lookupd key with it (L-TCP-09)
	const ephTopic = "etop#ephemeral"
	c2 := newConsumer(t, ephTopic, "c#ephemeral", nsq.HandlerFunc(func(*nsq.Message) error { return nil }))
	if err := c2.ConnectToNSQD(n.tcpAddr); err != nil {
		t.Fatal(err)
	}
	waitLookupPorts(t, l, ephTopic, n.tcpPort)
	waitChannels(t, l, ephTopic, "c#ephemeral")
	stopConsumer(t, c2)
	eventually(t, waitLimit, "ephemeral topic key to leave /topics", func() (bool, string) {
		got := l.topics(t)
		return !slices.Contains(got, ephTopic), fmt.Sprintf("%v", got)
	})
	if code, _ := l.lookup(t, ephTopic); code != 404 {
		t.Errorf("/lookup?topic=%s after the ephemeral topic went away: %d, want 404 TOPIC_NOT_FOUND", ephTopic, code)
	}

	// a channel again, then delete the whole topic over HTTP: UNREGISTER reg
	// removes the producer from the topic and from its channels (D-TOPIC-04)
	n.createChannel(t, topic, "c2")
	waitDebugPorts(t, l, "channel:"+topic+":c2", n.tcpPort)
	n.post(t, "/topic/delete?topic="+topic)
	eventually(t, waitLimit, "/lookup producers [] after topic delete", func() (bool, string) {
		code, r := l.lookup(t, topic)
		return code == 200 && len(r.Producers) == 0, fmt.Sprintf("%d %+v", code, r)
	})
	waitDebugPorts(t, l, "topic:"+topic+":")
	waitDebugPorts(t, l, "channel:"+topic+":c2")
	if got := l.topics(t); !slices.Contains(got, topic) {
		t.Errorf("L-DB-03: /topics = %v after nsqd deleted %q; the empty key should linger", got, topic)
	}

	// re-created: registered again
	n.post(t, "/topic/create?topic="+topic)
	waitLookupPorts(t, l, topic, n.tcpPort)
}

// ---------------------------------------------------------------------------
// 3. producer exit, tombstones

// D-LKP-11, L-TCP-10, L-DB-05, L-HTTP-05/06/12.
func TestExitAndTombstone(t *testing.T) {
	t.Parallel()
	const lifetime = 2 * time.Second
	l := startLookupd(t, "lookupd", func(o *nsqlookupd.Options) { o.TombstoneLifetime = lifetime })
	n1 := startNSQD(t, "nsqd1", []string{l.tcpAddr}, nil)
	n2 := startNSQD(t, "nsqd2", []string{l.tcpAddr}, nil)

	const topic = "tomb"
	n1.post(t, "/topic/create?topic="+topic)
	n2.post(t, "/topic/create?topic="+topic)
	waitLookupPorts(t, l, topic, n1.tcpPort, n2.tcpPort)

	// tombstone nsqd1's producer of the topic
	node1 := fmt.Sprintf("127.0.0.1:%d", n1.httpPort)
	start := time.Now()
	mustHTTP(t, "POST", "http://"+l.httpAddr+"/topic/tombstone?topic="+topic+"&node="+q(node1), "")
	if got := l.lookupTCPPorts(t, topic); !intsEqual(got, []int{n2.tcpPort}) {
		t.Errorf("L-DB-05: /lookup right after tombstoning %s: ports %v, want only [%d]", node1, got, n2.tcpPort)
	}
	checkNodes := func(wantTomb bool) {
		t.Helper()
		seen := 0
		for _, nd := range l.nodes(t) {
			if len(nd.Tombstones) != len(nd.Topics) {
				t.Errorf("L-HTTP-06: node %d tombstones %v and topics %v differ in length",
					nd.TCPPort, nd.Tombstones, nd.Topics)
			}
			switch nd.TCPPort {
			case n1.tcpPort:
				seen++
				if !strsEqual(nd.Topics, []string{topic}) || !slices.Equal(nd.Tombstones, []bool{wantTomb}) {
					t.Errorf("L-HTTP-06 /nodes for the tombstoned nsqd: topics %v tombstones %v, want [%s] [%v]",
						nd.Topics, nd.Tombstones, topic, wantTomb)
				}
			case n2.tcpPort:
				seen++
				if !strsEqual(nd.Topics, []string{topic}) || !slices.Equal(nd.Tombstones, []bool{false}) {
					t.Errorf("L-HTTP-06 /nodes for the other nsqd: topics %v tombstones %v, want [%s] [false]",
						nd.Topics, nd.Tombstones, topic)
				}
			}
		}
		if seen != 2 {
			t.Errorf("/nodes lists %d of the 2 nsqds (tombstones must not hide nodes)", seen)
		}
	}
	checkNodes(true)

	// a re-REGISTER (new channel) does not lift the tombstone (L-DB-05),
	// and the channel still shows in /lookup
	n1.createChannel(t, topic, "during")
	waitDebugPorts(t, l, "channel:"+topic+":during", n1.tcpPort)
	code, r := l.lookup(t, topic)
	if time.Since(start) < lifetime-200*time.Millisecond {
		var ports []int
		for _, p := range r.Producers {
			ports = append(ports, p.TCPPort)
		}
		if code != 200 || !intsEqual(ports, []int{n2.tcpPort}) || !slices.Contains(r.Channels, "during") {
			t.Errorf("L-DB-05: /lookup after a REGISTER during the tombstone: %d ports %v channels %v; "+
				"want only [%d] and channel \"during\"", code, ports, r.Channels, n2.tcpPort)
		}
	} else {
		t.Logf("machine too slow to check the re-REGISTER case inside the %s tombstone", lifetime)
	}

	// the tombstone expires by time: nsqd1 comes back, not earlier
	eventually(t, lifetime+waitLimit, "tombstoned producer to come back in /lookup", func() (bool, string) {
		got := l.lookupTCPPorts(t, topic)
		return intsEqual(got, sortedInts(n1.tcpPort, n2.tcpPort)), fmt.Sprintf("%v", got)
	})
	if el := time.Since(start); el < lifetime {
		t.Errorf("L-DB-05: tombstoned producer back in /lookup after %s, before the %s lifetime", el, lifetime)
	}
	checkNodes(false)

	// an ephemeral topic on nsqd1, then nsqd1 exits: no UNREGISTER is sent
	// (D-LKP-11), lookupd drops the producer everywhere when the connection
	// closes but keeps the keys, ephemeral ones included (L-TCP-10)
	const ephTopic = "gone#ephemeral"
	n1.post(t, "/topic/create?topic="+q(ephTopic))
	waitLookupPorts(t, l, ephTopic, n1.tcpPort)
	n1.stop()
	waitLookupPorts(t, l, topic, n2.tcpPort)
	eventually(t, waitLimit, "/nodes to list only the remaining nsqd", func() (bool, string) {
		var ports []int
		for _, nd := range l.nodes(t) {
			ports = append(ports, nd.TCPPort)
		}
		return intsEqual(ports, []int{n2.tcpPort}), fmt.Sprintf("%v", ports)
	})
	code, r = l.lookup(t, ephTopic)
	if code != 200 || len(r.Producers) != 0 {
		t.Errorf("D-LKP-11/L-TCP-10: /lookup?topic=%s after its nsqd exited: %d %+v; want 200 with no producers "+
			"(key kept: nsqd sends no UNREGISTER at exit, disconnect cleanup keeps keys)", ephTopic, code, r)
	}
	waitDebugPorts(t, l, "channel:"+topic+":during")
}

// ---------------------------------------------------------------------------
// 4. lookupd restart

// D-LKP-06/07, L-DB-02: a restarted lookupd is empty, and nsqd re-registers
// every topic and channel on its next PING's reconnect.
func TestLookupdRestart(t *testing.T) {
	t.Parallel()
	const ping = 200 * time.Millisecond
	addrs := daemons.FreeAddrs(t, 2)
	mod := func(o *nsqlookupd.Options) { o.TCPAddress, o.HTTPAddress = addrs[0], addrs[1] }
	l := startLookupd(t, "lookupd", mod)
	n := startNSQD(t, "nsqd", []string{l.tcpAddr}, func(o *nsqd.Options) { o.LookupdPingInterval = ping })

	n.createChannel(t, "rs1", "c1")
	n.createChannel(t, "rs1", "c2")
	n.post(t, "/topic/create?topic=rs2")
	n.post(t, "/topic/create?topic="+q("rs3#ephemeral"))
	checkAll := func(l *lookupd) {
		t.Helper()
		for _, tp := range []string{"rs1", "rs2", "rs3#ephemeral"} {
			waitLookupPorts(t, l, tp, n.tcpPort)
		}
		waitChannels(t, l, "rs1", "c1", "c2")
		waitDebugPorts(t, l, "channel:rs1:c1", n.tcpPort)
		waitDebugPorts(t, l, "channel:rs1:c2", n.tcpPort)
	}
	checkAll(l)

	l.stop()
	// same addresses again; the ports were just released, retry briefly
	var l2 *lookupd
	eventually(t, waitLimit, "restarted nsqlookupd to bind "+strings.Join(addrs, ","), func() (bool, string) {
		opts := lookupdOpts(t, "lookupd-restarted")
		mod(opts)
		var err error
		l2, err = newLookupd(opts, func(nl *nsqlookupd.NSQLookupd) {
			if got := nl.DB().TopicNames(); len(got) != 0 {
				t.Errorf("L-DB-02: a new nsqlookupd starts with topics %v", got)
			}
		})
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Cleanup(l2.stop)
	restarted := time.Now()
	checkAll(l2)
	t.Logf("re-registration complete %s after the restart (ping interval %s)", time.Since(restarted), ping)
	// one producer, not a stale one plus a new one
	if ns := l2.nodes(t); len(ns) != 1 || ns[0].TCPPort != n.tcpPort {
		t.Errorf("/nodes after restart: %+v, want exactly the one nsqd", ns)
	}
}

// ---------------------------------------------------------------------------
// 5. channel pre-creation

// D-TOPIC-01, D-LKP-09, D-EPH-02: a new topic gets the channels lookupd
// knows (not the ephemeral ones) before its first message.
func TestChannelPrecreation(t *testing.T) {
	t.Parallel()
	l := startLookupd(t, "lookupd", nil)
	n := startNSQD(t, "nsqd", []string{l.tcpAddr}, nil)
	lh := "http://" + l.httpAddr

	// nsqd learns lookupd's HTTP address from the IDENTIFY answer; probe
	// with throw-away topics until pre-creation works at all
	probe := 0
	eventually(t, waitLimit, "nsqd to have identified with lookupd (pre-creation on a probe topic)",
		func() (bool, string) {
			probe++
			tp := fmt.Sprintf("probe%d", probe)
			mustHTTP(t, "POST", lh+"/channel/create?topic="+tp+"&channel=pc", "")
			n.post(t, "/topic/create?topic="+tp)
			ts, ok := n.topicStats(t, tp)
			return ok && strsEqual(channelNames(ts), []string{"pc"}), fmt.Sprintf("%+v", ts)
		})

	const topic = "pre"
	mustHTTP(t, "POST", lh+"/channel/create?topic="+topic+"&channel=c1", "")
	mustHTTP(t, "POST", lh+"/channel/create?topic="+topic+"&channel="+q("eph#ephemeral"), "")
	if got := l.channels(t, topic); !strsEqual(got, []string{"c1", "eph#ephemeral"}) {
		t.Fatalf("lookupd /channels?topic=%s = %v, want [c1 eph#ephemeral]", topic, got)
	}

	n.pub(t, topic, "first")
	eventually(t, waitLimit, "the pre-created channel to hold the first message", func() (bool, string) {
		ts, ok := n.topicStats(t, topic)
		if !ok {
			return false, "topic missing from /stats"
		}
		for _, c := range ts.Channels {
			if c.ChannelName == "c1" {
				return c.Depth == 1 && c.MessageCount == 1 && ts.Depth == 0, fmt.Sprintf("%+v", ts)
			}
		}
		return false, fmt.Sprintf("%+v", ts)
	})
	ts, _ := n.topicStats(t, topic)
	if got := channelNames(ts); !strsEqual(got, []string{"c1"}) {
		t.Errorf("D-TOPIC-01/D-EPH-02: channels of %q on nsqd = %v, want [c1] (ephemeral ones are not pre-created)",
			topic, got)
	}
	// the pre-created channel is registered back (REGISTER pre c1)
	waitDebugPorts(t, l, "channel:"+topic+":c1", n.tcpPort)
	waitDebugPorts(t, l, "channel:"+topic+":eph#ephemeral")
}

// ---------------------------------------------------------------------------
// 6. PUT /config/nsqlookupd_tcp_addresses

// D-LKP-08, D-HTTP-33/34, L-TCP-10.
func TestConfigLookupdAddresses(t *testing.T) {
	t.Parallel()
	la := startLookupd(t, "lookupdA", nil)
	lb := startLookupd(t, "lookupdB", nil)
	n := startNSQD(t, "nsqd", []string{la.tcpAddr}, nil)
	cfgURL := "http://" + n.httpAddr + "/config/nsqlookupd_tcp_addresses"

	const topic = "cfg"
	n.createChannel(t, topic, "c")
	waitLookupPorts(t, la, topic, n.tcpPort)
	waitDebugPorts(t, la, "channel:"+topic+":c", n.tcpPort)

	checkCfg := func(body []byte, want []string) {
		t.Helper()
		var got []string
		if err := json.Unmarshal(body, &got); err != nil || !strsEqual(got, want) {
			t.Errorf("config answer %q, want %q", body, want)
		}
	}

	// empty list: peer A is closed, so A drops the producer (L-TCP-10)
	checkCfg(mustHTTP(t, "PUT", cfgURL, `[]`), []string{})
	checkCfg(mustHTTP(t, "GET", cfgURL, ""), []string{})
	waitLookupPorts(t, la, topic)
	waitDebugPorts(t, la, "channel:"+topic+":c")
	eventually(t, waitLimit, "lookupd A /nodes to be empty", func() (bool, string) {
		ns := la.nodes(t)
		return len(ns) == 0, fmt.Sprintf("%+v", ns)
	})

	// new lookupd (listed twice: still one peer, D-LKP-01): everything is
	// registered there at once, not at the next 15 s PING
	checkCfg(mustHTTP(t, "PUT", cfgURL, `["`+lb.tcpAddr+`","`+lb.tcpAddr+`"]`), []string{lb.tcpAddr, lb.tcpAddr})
	waitLookupPorts(t, lb, topic, n.tcpPort)
	waitChannels(t, lb, topic, "c")
	waitDebugPorts(t, lb, "channel:"+topic+":c", n.tcpPort)
	waitDebugPorts(t, lb, "client::", n.tcpPort)

	// later changes go to B only
	n.createChannel(t, topic, "later")
	waitDebugPorts(t, lb, "channel:"+topic+":later", n.tcpPort)
	if got := la.nodes(t); len(got) != 0 {
		t.Errorf("removed lookupd A lists nodes %+v", got)
	}
	if got := la.channels(t, topic); slices.Contains(got, "later") {
		t.Errorf("removed lookupd A was told about a new channel: /channels %v", got)
	}
}

// ---------------------------------------------------------------------------
// 8. the lookup loop on the wire, against a scripted lookupd (7. is
// binaries_test.go)

// fakeLookupd speaks lookupd's TCP protocol V1 just enough for nsqd: it
// answers IDENTIFY with its own info (pointing at httpSrv for /channels)
// and everything else with OK, and reports every step on events.
type fakeLookupd struct {
	ln       net.Listener
	httpAddr *net.TCPAddr
	events   chan string
	stall    atomic.Bool // when set, commands after IDENTIFY get no answer
	// identifyReply, when set, is sent as the IDENTIFY answer instead of
	// the lookupd's JSON info
	identifyReply atomic.Pointer[string]

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startFakeLookupd(t testing.TB, httpAddr *net.TCPAddr) *fakeLookupd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLookupd{ln: ln, httpAddr: httpAddr, events: make(chan string, 1000)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.dropAll()
		f.wg.Wait()
	})
	return f
}

func (f *fakeLookupd) event(s string) {
	select {
	case f.events <- s:
	default:
	}
}

func (f *fakeLookupd) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func (f *fakeLookupd) serve(c net.Conn) {
	defer c.Close()
	f.event("CONNECT")
	r := bufio.NewReader(c)
	magic := make([]byte, 4)
	if _, err := io.ReadFull(r, magic); err != nil {
		return
	}
	f.event("MAGIC " + string(magic))
	respond := func(b []byte) error {
		out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		_, err := c.Write(append(out, b...))
		return err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			f.event("EOF")
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "IDENTIFY" {
			var lenBuf [4]byte
			if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
				return
			}
			body := make([]byte, int(lenBuf[0])<<24|int(lenBuf[1])<<16|int(lenBuf[2])<<8|int(lenBuf[3]))
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			f.event("IDENTIFY " + string(body))
			if r := f.identifyReply.Load(); r != nil {
				if respond([]byte(*r)) != nil {
					return
				}
				continue
			}
			resp, _ := json.Marshal(map[string]interface{}{
				"broadcast_address": "127.0.0.1",
				"hostname":          "fake",
				"http_port":         f.httpAddr.Port,
				"tcp_port":          f.ln.Addr().(*net.TCPAddr).Port,
				"version":           "1.3.0",
			})
			if respond(resp) != nil {
				return
			}
			continue
		}
		f.event(line)
		if f.stall.Load() {
			continue
		}
		if respond([]byte("OK")) != nil {
			return
		}
	}
}

// expectEvent waits for want, skipping PINGs (unless want is PING).
func (f *fakeLookupd) expectEvent(t testing.TB, want string) string {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case ev := <-f.events:
			if ev == "PING" && want != "PING" {
				continue
			}
			if !strings.HasPrefix(ev, want) {
				t.Fatalf("fake lookupd saw %q, want %q", ev, want)
			}
			return ev
		case <-deadline:
			t.Fatalf("fake lookupd: no %q within %s", want, waitLimit)
		}
	}
}

// nextEvent returns the next event, whatever it is.
func (f *fakeLookupd) nextEvent(t testing.TB) string {
	t.Helper()
	select {
	case ev := <-f.events:
		return ev
	case <-time.After(waitLimit):
		t.Fatalf("fake lookupd: no event within %s", waitLimit)
		return ""
	}
}

// skipTo discards events until one starts with want.
func (f *fakeLookupd) skipTo(t testing.TB, want string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case ev := <-f.events:
			if strings.HasPrefix(ev, want) {
				return
			}
		case <-deadline:
			t.Fatalf("fake lookupd: no %q within %s", want, waitLimit)
		}
	}
}

// expectSet waits for the events in want in any order (PINGs skipped).
func (f *fakeLookupd) expectSet(t testing.TB, want ...string) {
	t.Helper()
	left := map[string]int{}
	for _, w := range want {
		left[w]++
	}
	deadline := time.After(waitLimit)
	for len(left) > 0 {
		select {
		case ev := <-f.events:
			if ev == "PING" {
				continue
			}
			if left[ev] == 0 {
				t.Fatalf("fake lookupd saw %q, want one of %v", ev, left)
			}
			if left[ev]--; left[ev] == 0 {
				delete(left, ev)
			}
		case <-deadline:
			t.Fatalf("fake lookupd: still waiting for %v after %s", left, waitLimit)
		}
	}
}

// D-LKP-01/02/04/05/06/07/09, D-TOPIC-01: the exact conversation nsqd
// has with a lookupd.
func TestLookupLoopWire(t *testing.T) {
	t.Parallel()
	type chReq struct{ uri, accept string }
	chReqs := make(chan chReq, 100)
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case chReqs <- chReq{r.URL.RequestURI(), r.Header.Get("Accept")}:
		default:
		}
		w.Header().Set("X-NSQ-Content-Type", "nsq; version=1.0")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.URL.Query().Get("topic") == "w" {
			io.WriteString(w, `{"channels":["pc","pe#ephemeral"]}`)
		} else {
			io.WriteString(w, `{"channels":[]}`)
		}
	})}
	go srv.Serve(httpLn)
	t.Cleanup(func() { srv.Close() })

	f := startFakeLookupd(t, httpLn.Addr().(*net.TCPAddr))
	n := startNSQD(t, "nsqd", []string{f.ln.Addr().String()}, func(o *nsqd.Options) {
		o.LookupdPingInterval = 200 * time.Millisecond
	})

	// D-LKP-01/02: magic, then IDENTIFY with alphabetical keys
	hostname, _ := os.Hostname()
	checkIdentify := func() {
		t.Helper()
		f.expectEvent(t, "CONNECT")
		f.expectEvent(t, "MAGIC   V1")
		body := strings.TrimPrefix(f.expectEvent(t, "IDENTIFY "), "IDENTIFY ")
		wantKeys := []string{"broadcast_address", "hostname", "http_port", "tcp_port",
			"topology_region", "topology_zone", "version"}
		if keys := objectKeys(t, []byte(body)); !strsEqual(keys, wantKeys) {
			t.Errorf("D-LKP-02 IDENTIFY keys %v, want %v", keys, wantKeys)
		}
		var id struct {
			BroadcastAddress string `json:"broadcast_address"`
			Hostname         string `json:"hostname"`
			HTTPPort         int    `json:"http_port"`
			TCPPort          int    `json:"tcp_port"`
			Version          string `json:"version"`
		}
		json.Unmarshal([]byte(body), &id)
		if id.BroadcastAddress != "127.0.0.1" || id.Hostname != hostname || id.HTTPPort != n.httpPort ||
			id.TCPPort != n.tcpPort || id.Version != "1.3.0" {
			t.Errorf("D-LKP-02 IDENTIFY body %s: want 127.0.0.1, %q, http %d, tcp %d, 1.3.0",
				body, hostname, n.httpPort, n.tcpPort)
		}
	}
	checkIdentify()

	// D-LKP-06: PINGs at the configured interval
	f.expectEvent(t, "PING")

	// D-TOPIC-01/D-LKP-09: a new topic queries /channels on the lookupd's
	// broadcast_address:http_port with the V1 Accept header, pre-creates
	// the non-ephemeral channels, then REGISTERs topic and channel
	n.post(t, "/topic/create?topic=w")
	select {
	case r := <-chReqs:
		if r.uri != "/channels?topic=w" || r.accept != "application/vnd.nsq; version=1.0" {
			t.Errorf("D-LKP-09 channel query %q Accept %q, want /channels?topic=w with "+
				"\"application/vnd.nsq; version=1.0\"", r.uri, r.accept)
		}
	case <-time.After(waitLimit):
		t.Fatal("D-TOPIC-01: nsqd did not query the lookupd's /channels for a new topic")
	}
	f.expectEvent(t, "REGISTER w")
	f.expectEvent(t, "REGISTER w pc")
	ts, _ := n.topicStats(t, "w")
	if got := channelNames(ts); !strsEqual(got, []string{"pc"}) {
		t.Errorf("D-TOPIC-01: channels of w = %v, want [pc] (ephemeral not pre-created)", got)
	}

	// D-LKP-07 + D-LKP-04: the lookupd drops the connection; the next PING
	// reconnects, re-IDENTIFYs and re-REGISTERs (a topic with channels only
	// per channel) before anything else
	n.post(t, "/topic/create?topic=solo")
	select {
	case <-chReqs:
	case <-time.After(waitLimit):
		t.Fatal("no /channels query for topic solo")
	}
	f.expectEvent(t, "REGISTER solo")
	f.dropAll()
	f.expectEvent(t, "EOF")
	checkIdentify()
	f.expectSet(t, "REGISTER w pc", "REGISTER solo")
	f.expectEvent(t, "PING")

	// D-LKP-05: deletions
	n.post(t, "/channel/delete?topic=w&channel=pc")
	f.expectEvent(t, "UNREGISTER w pc")
	n.post(t, "/topic/delete?topic=solo")
	f.expectEvent(t, "UNREGISTER solo")

	// D-LKP-11: no UNREGISTER at shutdown, the connection just closes
	n.stop()
	for {
		select {
		case ev := <-f.events:
			if ev == "EOF" {
				return
			}
			if ev != "PING" {
				t.Fatalf("D-LKP-11: nsqd sent %q while shutting down, want nothing", ev)
			}
		case <-time.After(waitLimit):
			t.Fatal("nsqd did not close its lookupd connection at exit")
		}
	}
}

// D-LKP-01 (1 s read deadline), D-LKP-07, D-LKP-12: a lookupd that stops
// answering costs nsqd one second per command, then the connection is
// closed and re-made; publishing is not held up meanwhile.
func TestLookupdUnresponsive(t *testing.T) {
	t.Parallel()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"channels":[]}`)
	})}
	go srv.Serve(httpLn)
	t.Cleanup(func() { srv.Close() })
	f := startFakeLookupd(t, httpLn.Addr().(*net.TCPAddr))
	n := startNSQD(t, "nsqd", []string{f.ln.Addr().String()}, func(o *nsqd.Options) {
		o.LookupdPingInterval = 200 * time.Millisecond
	})
	f.skipTo(t, "PING") // connected and registered: the loop is idle
	n.post(t, "/topic/create?topic=slow")
	f.expectEvent(t, "REGISTER slow")

	f.stall.Store(true)
	f.expectEvent(t, "PING")
	stalled := time.Now()
	// publishing to an existing topic does not wait for the lookup loop
	for i := 0; i < 10; i++ {
		start := time.Now()
		n.pub(t, "slow", "x")
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("D-LKP-12: /pub took %s while the lookupd was unresponsive", d)
		}
	}
	// a new topic's REGISTER is queued behind the stalled PING
	n.post(t, "/topic/create?topic=queued")
	// the fake reports events from one goroutine per connection, so the
	// reconnection may be reported before the old connection's EOF
	f.skipTo(t, "EOF")
	if d := time.Since(stalled); d < 800*time.Millisecond || d > 5*time.Second {
		t.Errorf("D-LKP-01: unanswered PING closed the connection after %s, want about 1s", d)
	}
	f.stall.Store(false)
	// the queued REGISTER reconnects (or the next PING does) and the state
	// is complete again: REGISTERs come only after CONNECT, magic, IDENTIFY
	seen := map[string]bool{}
	deadline := time.After(waitLimit)
	for !seen["REGISTER slow"] || !seen["REGISTER queued"] {
		select {
		case ev := <-f.events:
			seen[ev] = true
		case <-deadline:
			t.Fatalf("after reconnect saw %v, want REGISTER slow and REGISTER queued", seen)
		}
	}
}

// D-LKP-03: an IDENTIFY answer that is E_INVALID or not JSON makes nsqd
// close the connection without registering anything; it retries later.
func TestLookupdIdentifyRejected(t *testing.T) {
	t.Parallel()
	f := startFakeLookupd(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	bad := "E_INVALID"
	f.identifyReply.Store(&bad)
	n := startNSQD(t, "nsqd", []string{f.ln.Addr().String()}, func(o *nsqd.Options) {
		o.LookupdPingInterval = 200 * time.Millisecond
	})
	for _, reply := range []string{"E_INVALID", "E_BAD_BODY IDENTIFY missing fields"} {
		r := reply
		f.identifyReply.Store(&r)
		f.skipTo(t, "IDENTIFY ") // a connection made with this reply in place
		for {
			ev := f.nextEvent(t)
			if ev == "EOF" {
				break
			}
			if strings.HasPrefix(ev, "REGISTER") || ev == "PING" {
				t.Fatalf("D-LKP-03: after IDENTIFY answer %q nsqd sent %q, want the connection closed", r, ev)
			}
			if !strings.HasPrefix(ev, "CONNECT") && !strings.HasPrefix(ev, "MAGIC") && !strings.HasPrefix(ev, "IDENTIFY") {
				t.Fatalf("unexpected event %q", ev)
			}
		}
	}
	// a proper answer: registered on the next attempt
	f.identifyReply.Store(nil)
	n.post(t, "/topic/create?topic=late")
	f.skipTo(t, "REGISTER late")
}

// L-DB-04, D-LKP-06: a producer that has not PINGed within
// --inactive-producer-timeout is hidden from /lookup and /nodes (its keys
// stay), and its next PING on the same connection brings it back.
func TestInactiveProducer(t *testing.T) {
	t.Parallel()
	l := startLookupd(t, "lookupd", func(o *nsqlookupd.Options) { o.InactiveProducerTimeout = 700 * time.Millisecond })
	n := startNSQD(t, "nsqd", []string{l.tcpAddr}, func(o *nsqd.Options) { o.LookupdPingInterval = 2 * time.Second })
	n.post(t, "/topic/create?topic=idle")
	waitLookupPorts(t, l, "idle", n.tcpPort)
	remote := ""
	for _, nd := range l.nodes(t) {
		remote = nd.RemoteAddress
	}
	eventually(t, waitLimit, "the silent producer to be hidden from /lookup and /nodes", func() (bool, string) {
		ports := l.lookupTCPPorts(t, "idle")
		ns := l.nodes(t)
		return len(ports) == 0 && len(ns) == 0, fmt.Sprintf("lookup %v nodes %+v", ports, ns)
	})
	if got := l.topics(t); !slices.Contains(got, "idle") {
		t.Errorf("L-DB-04: inactive producers are hidden, not deleted: /topics = %v", got)
	}
	waitDebugPorts(t, l, "topic:idle:", n.tcpPort)
	// the next PING (same connection) makes it active again
	waitLookupPorts(t, l, "idle", n.tcpPort)
	ns := l.nodes(t)
	if len(ns) != 1 || ns[0].RemoteAddress != remote {
		t.Errorf("after the PING /nodes = %+v, want the same connection %s", ns, remote)
	}
}

// D-LKP-10: explicit --broadcast-address/--broadcast-tcp-port/
// --broadcast-http-port are what /lookup returns, unchecked (here ports
// nothing listens on, as behind a NAT or a proxy).
func TestExplicitBroadcastValues(t *testing.T) {
	t.Parallel()
	l := startLookupd(t, "lookupd", nil)
	n := startNSQD(t, "nsqd", []string{l.tcpAddr}, func(o *nsqd.Options) {
		o.BroadcastAddress = "nsqd.example"
		o.BroadcastTCPPort = 4242
		o.BroadcastHTTPPort = 4343
	})
	n.pub(t, "bcast", "m")
	waitLookupPorts(t, l, "bcast", 4242)
	_, r := l.lookup(t, "bcast")
	if len(r.Producers) != 1 {
		t.Fatalf("/lookup producers %+v, want one", r.Producers)
	}
	if p := r.Producers[0]; p.BroadcastAddress != "nsqd.example" || p.TCPPort != 4242 || p.HTTPPort != 4343 {
		t.Fatalf("/lookup producer %+v, want nsqd.example tcp 4242 http 4343", p)
	}
}

// D-LKP-09: with no lookupd answering, a new topic has no channels to
// pre-create and nsqd says so; the topic is created all the same.
func TestNoLookupdToQueryForChannels(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	logs := newTLogger(t, "nsqd: ")
	n := startNSQD(t, "nsqd", []string{dead}, func(o *nsqd.Options) { o.Logger = logs })
	n.post(t, "/topic/create?topic=alone")
	want := "ERROR: no available nsqlookupd to query for channels to pre-create for topic alone"
	eventually(t, waitLimit, "the pre-create error log", func() (bool, string) {
		return logs.has(want), "not logged"
	})
	if _, ok := n.topicStats(t, "alone"); !ok {
		t.Fatal("topic alone not created")
	}
}

// blackholeAddr returns a loopback address whose listener never accepts
// and whose accept queue is full, so a new connection attempt gets no
// answer at all (its SYN is dropped) and waits for the dialer's timeout.
func blackholeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// fill the accept queue until a dial goes unanswered
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("this kernel answers connections beyond a full accept queue")
	return ""
}

// D-LKP-01: a lookupd that does not answer the connection attempt is given
// up after the 1 s dial timeout, and tried again at the next heartbeat.
func TestLookupdDialTimeout(t *testing.T) {
	t.Parallel()
	addr := blackholeAddr(t)
	logs := newTLogger(t, "nsqd: ")
	startNSQD(t, "nsqd", []string{addr}, func(o *nsqd.Options) {
		o.Logger = logs
		o.LookupdPingInterval = 100 * time.Millisecond
	})
	want := "PING - dial tcp " + addr + ": i/o timeout"
	eventually(t, waitLimit, "a PING dial timing out", func() (bool, string) {
		return logs.has(want), "not logged"
	})
	// the attempts are a dial timeout apart, not a ping interval
	attempts := logs.times("LOOKUP connecting to " + addr)
	if len(attempts) < 2 {
		t.Fatalf("%d connection attempts logged", len(attempts))
	}
	if gap := attempts[1].Sub(attempts[0]); gap < 900*time.Millisecond || gap > 3*time.Second {
		t.Fatalf("attempts %v apart, want the 1 s dial timeout", gap)
	}
}

// D-LKP-03: what nsqd logs for each IDENTIFY answer, and that a lookupd
// answering without a broadcast address is kept for registration but not
// asked for channels.
func TestLookupdIdentifyAnswersLogged(t *testing.T) {
	t.Parallel()
	f := startFakeLookupd(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1})
	addr := f.ln.Addr().String()
	bad := "E_INVALID"
	f.identifyReply.Store(&bad)
	logs := newTLogger(t, "nsqd: ")
	n := startNSQD(t, "nsqd", []string{addr}, func(o *nsqd.Options) {
		o.Logger = logs
		o.LookupdPingInterval = 200 * time.Millisecond
	})
	expectLog := func(want string) {
		t.Helper()
		eventually(t, waitLimit, "log "+want, func() (bool, string) { return logs.has(want), "not logged" })
	}
	f.skipTo(t, "IDENTIFY ")
	expectLog("INFO: LOOKUPD(" + addr + "): lookupd returned E_INVALID")

	unparsable := "E_BAD_BODY IDENTIFY missing fields"
	f.identifyReply.Store(&unparsable)
	f.skipTo(t, "IDENTIFY ")
	expectLog("ERROR: LOOKUPD(" + addr + "): parsing response - E_BAD_BODY IDENTIFY missing fields")

	noAddr := `{"tcp_port":4160,"http_port":4161,"version":"1.3.0","broadcast_address":""}`
	f.identifyReply.Store(&noAddr)
	f.skipTo(t, "IDENTIFY ")
	expectLog("INFO: LOOKUPD(" + addr + "): peer info {TCPPort:4160 HTTPPort:4161 Version:1.3.0 BroadcastAddress:}")
	expectLog("ERROR: LOOKUPD(" + addr + "): no broadcast address")
	// kept: registrations go to it; not used for HTTP: no channel query
	n.post(t, "/topic/create?topic=noaddr")
	f.skipTo(t, "REGISTER noaddr")
	expectLog("ERROR: no available nsqlookupd to query for channels to pre-create for topic noaddr")
}
