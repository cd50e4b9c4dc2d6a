package nsqd_test

// Conformance tests for statsd (D-STATSD-01..04, D-CLI-40..45) and the end
// to end processing latency (D-E2E-01/02, D-CLI-46/47, D-HTTP-19/20/24/33),
// driven through a real UDP listener, HTTP and go-nsq clients. Helpers are
// prefixed "sd" to share the nsqd_test package without collisions.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	nsq "github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/nsqd"
)

// ---------------------------------------------------------------------------
// helpers

type sdLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *sdLog) Output(_ int, s string) error {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
	return nil
}

func (l *sdLog) contains(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// sdUDP is a statsd stand-in: every datagram received, in order.
type sdUDP struct {
	conn *net.UDPConn
	ch   chan []byte
}

func sdListen(t testing.TB) *sdUDP {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	u := &sdUDP{conn: conn, ch: make(chan []byte, 10000)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(u.ch)
				return
			}
			u.ch <- append([]byte(nil), buf[:n]...)
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return u
}

func (u *sdUDP) addr() string { return u.conn.LocalAddr().String() }

// packet waits for the next datagram.
func (u *sdUDP) packet(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	select {
	case p, ok := <-u.ch:
		if !ok {
			t.Fatal("UDP listener closed")
		}
		return p
	case <-time.After(timeout):
		t.Fatalf("no statsd datagram within %v", timeout)
	}
	return nil
}

// round collects the lines of one push: with mem stats on, every push
// ends with the mem.gc_runs counter.
func (u *sdUDP) round(t testing.TB, timeout time.Duration) []string {
	t.Helper()
	var lines []string
	deadline := time.Now().Add(timeout)
	for {
		p := u.packet(t, time.Until(deadline))
		if !strings.HasSuffix(string(p), "\n") {
			t.Fatalf("datagram does not end in a newline: %q", p)
		}
		for _, l := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
			lines = append(lines, l)
			if strings.HasSuffix(strings.SplitN(l, ":", 2)[0], "mem.gc_runs") {
				return lines
			}
		}
	}
}

func sdStart(t testing.TB, mod func(*nsqd.Options)) (*nsqd.NSQD, *sdLog) {
	t.Helper()
	log := &sdLog{}
	opts := nsqd.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.BroadcastAddress = "127.0.0.1"
	opts.DataPath = t.TempDir()
	opts.Logger = log
	if mod != nil {
		mod(opts)
	}
	n, err := nsqd.New(opts)
	if err != nil {
		t.Fatalf("nsqd.New: %v", err)
	}
	go n.Main()
	t.Cleanup(n.Exit)
	return n, log
}

func sdHTTPPort(n *nsqd.NSQD) int { return n.RealHTTPAddr().(*net.TCPAddr).Port }

func sdGet(t testing.TB, n *nsqd.NSQD, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + n.RealHTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return string(body)
}

func sdEventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sdTraffic publishes bodies to topic and FINs them on channel through
// go-nsq; the consumer stays connected until the test ends.
func sdTraffic(t testing.TB, n *nsqd.NSQD, topic, channel string, bodies []string) {
	t.Helper()
	cfg := nsq.NewConfig()
	p, err := nsq.NewProducer(n.RealTCPAddr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.SetLogger(&sdLog{}, nsq.LogLevelError)
	defer p.Stop()
	for _, b := range bodies {
		if err := p.Publish(topic, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	got := 0
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetLogger(&sdLog{}, nsq.LogLevelError)
	c.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		time.Sleep(time.Millisecond) // a measurable latency
		mu.Lock()
		got++
		mu.Unlock()
		return nil
	}))
	if err := c.ConnectToNSQD(n.RealTCPAddr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	sdEventually(t, 5*time.Second, "messages FINed", func() bool {
		stats := n.GetStats(topic, channel, false)
		if len(stats) != 1 || len(stats[0].Channels) != 1 {
			return false
		}
		ch := stats[0].Channels[0]
		mu.Lock()
		defer mu.Unlock()
		return got == len(bodies) && ch.InFlightCount == 0 && ch.Depth == 0 &&
			(ch.E2EProcessingLatency.Percentiles == nil || ch.E2EProcessingLatency.Count == len(bodies))
	})
}

type sdLine struct {
	name, typ string
	value     int64
}

var sdLineRe = regexp.MustCompile(`^([^:\s]+):(-?\d+)\|([cg])$`)

func sdParse(t testing.TB, lines []string) []sdLine {
	t.Helper()
	out := make([]sdLine, 0, len(lines))
	for _, l := range lines {
		m := sdLineRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("malformed statsd line %q", l)
		}
		v, _ := strconv.ParseInt(m[2], 10, 64)
		out = append(out, sdLine{name: m[1], typ: m[3], value: v})
	}
	return out
}

func sdFind(lines []sdLine, name string) (sdLine, bool) {
	for _, l := range lines {
		if l.name == name {
			return l, true
		}
	}
	return sdLine{}, false
}

// sdExpectedKeys is the metric set of D-STATSD-03 in send order.
func sdExpectedKeys(prefix, topic, channel string, percentiles []string, mem bool) []string {
	tk := prefix + "topic." + topic + "."
	keys := []string{tk + "message_count|c", tk + "message_bytes|c", tk + "depth|g", tk + "backend_depth|g"}
	for _, p := range percentiles {
		keys = append(keys, tk+"e2e_processing_latency_"+p+"|g")
	}
	ck := tk + "channel." + channel + "."
	keys = append(keys, ck+"message_count|c", ck+"depth|g", ck+"backend_depth|g", ck+"in_flight_count|g",
		ck+"deferred_count|g", ck+"requeue_count|c", ck+"timeout_count|c", ck+"clients|g")
	for _, p := range percentiles {
		keys = append(keys, ck+"e2e_processing_latency_"+p+"|g")
	}
	if mem {
		for _, k := range []string{"heap_objects", "heap_idle_bytes", "heap_in_use_bytes", "heap_released_bytes",
			"gc_pause_usec_100", "gc_pause_usec_99", "gc_pause_usec_95", "next_gc_bytes"} {
			keys = append(keys, prefix+"mem."+k+"|g")
		}
		keys = append(keys, prefix+"mem.gc_runs|c")
	}
	return keys
}

func sdKeys(lines []sdLine) []string {
	keys := make([]string, len(lines))
	for i, l := range lines {
		keys[i] = l.name + "|" + l.typ
	}
	return keys
}

// ---------------------------------------------------------------------------
// statsd

// TestStatsdMetrics_DSTATSD01to03: exact names, types and order; counters
// are deltas since the last push and zero deltas are sent; gauges and e2e
// gauges carry current values.
func TestStatsdMetrics_DSTATSD01to03(t *testing.T) {
	u := sdListen(t)
	start := time.Now()
	n, _ := sdStart(t, func(o *nsqd.Options) {
		o.StatsdAddress = u.addr()
		o.StatsdInterval = 200 * time.Millisecond
		o.E2EProcessingLatencyPercentiles = []float64{1.0, 0.99}
	})
	prefix := fmt.Sprintf("nsq.127_0_0_1_%d.", sdHTTPPort(n))
	n.GetTopic("sd_topic").GetChannel("sd_ch") // present from the first push on

	// first push one interval after start, not at once
	first := u.round(t, 3*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("first push after %v, want one interval (200ms)", d)
	}
	want := sdExpectedKeys(prefix, "sd_topic", "sd_ch", []string{"100", "99"}, true)
	if got := sdKeys(sdParse(t, first)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("metric set:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	bodies := []string{"one", "two", "three!"}
	sdTraffic(t, n, "sd_topic", "sd_ch", bodies)

	// counters are deltas: summed over the pushes they give the totals,
	// and once traffic stopped a push carries :0|c for all of them
	sums := map[string]int64{}
	for _, l := range sdParse(t, first) {
		if l.typ == "c" {
			sums[l.name] += l.value
		}
	}
	tk, ck := prefix+"topic.sd_topic.", prefix+"topic.sd_topic.channel.sd_ch."
	var quiet []sdLine
	for i := 0; i < 50 && quiet == nil; i++ {
		lines := sdParse(t, u.round(t, 3*time.Second))
		if got := sdKeys(lines); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("metric set changed:\n%s", strings.Join(got, "\n"))
		}
		allZero := true
		for _, l := range lines {
			if l.typ == "c" {
				sums[l.name] += l.value
				if l.value != 0 && l.name != prefix+"mem.gc_runs" {
					allZero = false
				}
			}
		}
		if allZero && sums[tk+"message_count"] == 3 {
			quiet = lines
		}
	}
	if quiet == nil {
		t.Fatalf("no quiet push after the traffic; sums %v", sums)
	}
	for name, want := range map[string]int64{
		tk + "message_count": 3, tk + "message_bytes": int64(len("one") + len("two") + len("three!")),
		ck + "message_count": 3, ck + "requeue_count": 0, ck + "timeout_count": 0,
	} {
		if sums[name] != want {
			t.Errorf("sum of %s deltas = %d, want %d", name, sums[name], want)
		}
	}
	for name, want := range map[string]int64{
		tk + "depth": 0, tk + "backend_depth": 0, ck + "depth": 0, ck + "backend_depth": 0,
		ck + "in_flight_count": 0, ck + "deferred_count": 0, ck + "clients": 1,
	} {
		if l, _ := sdFind(quiet, name); l.value != want {
			t.Errorf("%s = %d, want %d", name, l.value, want)
		}
	}
	for _, name := range []string{tk + "e2e_processing_latency_100", tk + "e2e_processing_latency_99",
		ck + "e2e_processing_latency_100", ck + "e2e_processing_latency_99"} {
		if l, _ := sdFind(quiet, name); l.value < int64(time.Millisecond) {
			t.Errorf("%s = %dns, want at least the handler's 1ms", name, l.value)
		}
	}
	if l, _ := sdFind(quiet, prefix+"mem.heap_objects"); l.value <= 0 {
		t.Errorf("mem.heap_objects = %d", l.value)
	}
	// gc_runs is a delta too: the sum over all pushes cannot exceed the
	// runtime's total
	if sums[prefix+"mem.gc_runs"] < 0 {
		t.Errorf("gc_runs deltas sum to %d", sums[prefix+"mem.gc_runs"])
	}
}

// TestStatsdGauges_DSTATSD03: depth, in-flight and deferred gauges follow
// the queues; requeue counters count.
func TestStatsdGauges_DSTATSD03(t *testing.T) {
	u := sdListen(t)
	n, _ := sdStart(t, func(o *nsqd.Options) {
		o.StatsdAddress = u.addr()
		o.StatsdInterval = 200 * time.Millisecond
		o.StatsdMemStats = true
	})
	prefix := fmt.Sprintf("nsq.127_0_0_1_%d.", sdHTTPPort(n))
	topic := n.GetTopic("sd_g")
	topic.GetChannel("c")
	for i := 0; i < 4; i++ {
		if err := topic.PutMessage(nsqd.NewMessage(topic.GenerateID(), []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	sdEventually(t, 3*time.Second, "channel depth 4", func() bool {
		s := n.GetStats("sd_g", "c", false)
		return len(s) == 1 && len(s[0].Channels) == 1 && s[0].Channels[0].Depth == 4
	})
	u.round(t, 3*time.Second) // may predate the messages
	lines := sdParse(t, u.round(t, 3*time.Second))
	for name, want := range map[string]int64{
		"topic.sd_g.depth": 0, "topic.sd_g.channel.c.depth": 4, "topic.sd_g.channel.c.clients": 0,
		"topic.sd_g.channel.c.in_flight_count": 0, "topic.sd_g.channel.c.deferred_count": 0,
	} {
		l, ok := sdFind(lines, prefix+name)
		if !ok || l.value != want {
			t.Errorf("%s = %d (%v), want %d", name, l.value, ok, want)
		}
	}
	// no percentiles configured: no e2e gauges
	for _, l := range lines {
		if strings.Contains(l.name, "e2e_processing_latency") {
			t.Errorf("e2e gauge without percentiles: %s", l.name)
		}
	}
}

// TestStatsdExcludeEphemeral_DSTATSD04: ephemeral topics and channels are
// skipped only with --statsd-exclude-ephemeral; names are sent raw.
func TestStatsdExcludeEphemeral_DSTATSD04(t *testing.T) {
	for _, exclude := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclude=%v", exclude), func(t *testing.T) {
			u := sdListen(t)
			n, _ := sdStart(t, func(o *nsqd.Options) {
				o.StatsdAddress = u.addr()
				o.StatsdInterval = 200 * time.Millisecond
				o.StatsdExcludeEphemeral = exclude
			})
			n.GetTopic("sd_eph#ephemeral").GetChannel("c")
			keep := n.GetTopic("sd_keep")
			keep.GetChannel("c#ephemeral")
			keep.GetChannel("d")
			lines := sdParse(t, u.round(t, 3*time.Second))
			prefix := fmt.Sprintf("nsq.127_0_0_1_%d.", sdHTTPPort(n))
			has := func(name string) bool { _, ok := sdFind(lines, prefix+name); return ok }
			if !has("topic.sd_keep.depth") || !has("topic.sd_keep.channel.d.depth") {
				t.Errorf("regular topic/channel missing")
			}
			if got := has("topic.sd_eph#ephemeral.depth"); got == exclude {
				t.Errorf("ephemeral topic sent = %v", got)
			}
			if got := has("topic.sd_eph#ephemeral.channel.c.depth"); got == exclude {
				t.Errorf("channel of ephemeral topic sent = %v", got)
			}
			if got := has("topic.sd_keep.channel.c#ephemeral.depth"); got == exclude {
				t.Errorf("ephemeral channel sent = %v", got)
			}
			// topics and channels in name order
			var order []string
			for _, l := range lines {
				if strings.HasSuffix(l.name, ".depth") {
					order = append(order, strings.TrimPrefix(l.name, prefix))
				}
			}
			wantOrder := []string{"topic.sd_eph#ephemeral.depth", "topic.sd_eph#ephemeral.channel.c.depth",
				"topic.sd_keep.depth", "topic.sd_keep.channel.c#ephemeral.depth", "topic.sd_keep.channel.d.depth"}
			if exclude {
				wantOrder = []string{"topic.sd_keep.depth", "topic.sd_keep.channel.d.depth"}
			}
			if strings.Join(order, ",") != strings.Join(wantOrder, ",") {
				t.Errorf("order %v, want %v", order, wantOrder)
			}
		})
	}
}

// TestStatsdPacketSize_DCLI44: datagrams are at most the packet size,
// several lines share one, and lines are never split.
func TestStatsdPacketSize_DCLI44(t *testing.T) {
	u := sdListen(t)
	n, _ := sdStart(t, func(o *nsqd.Options) {
		o.StatsdAddress = u.addr()
		o.StatsdInterval = 200 * time.Millisecond
		o.StatsdUDPPacketSize = 120
	})
	for i := 0; i < 5; i++ {
		tp := n.GetTopic(fmt.Sprintf("sd_pkt%d", i))
		tp.GetChannel("a")
		tp.GetChannel("b")
	}
	var lines, packets int
	multi := false
	for {
		p := u.packet(t, 3*time.Second)
		if len(p) > 120 {
			t.Errorf("%d-byte datagram exceeds 120: %q", len(p), p)
		}
		if !strings.HasSuffix(string(p), "\n") {
			t.Fatalf("datagram splits a line: %q", p)
		}
		ls := strings.Split(strings.TrimSuffix(string(p), "\n"), "\n")
		sdParse(t, ls)
		packets++
		lines += len(ls)
		multi = multi || len(ls) > 1
		if strings.Contains(ls[len(ls)-1], "mem.gc_runs") {
			break
		}
	}
	// 5 topics × (4 + 2 channels × 8) + 9 mem lines
	if lines != 5*(4+2*8)+9 {
		t.Errorf("%d lines in a push", lines)
	}
	if !multi || packets < 2 {
		t.Errorf("%d packets, multi-line %v", packets, multi)
	}
}

// TestStatsdPrefix_DSTATSD02_DHTTP33: %s expansion, trailing dot, empty
// prefix, and GET /config/statsd_prefix reporting the expanded prefix.
func TestStatsdPrefix_DSTATSD02_DHTTP33(t *testing.T) {
	for _, tc := range []struct {
		prefix, broadcast string
		want              func(port int) string
	}{
		{"nsq.%s", "127.0.0.1", func(p int) string { return fmt.Sprintf("nsq.127_0_0_1_%d.", p) }},
		{"stats.%s.nsqd", "my.host", func(p int) string { return fmt.Sprintf("stats.my_host_%d.nsqd.", p) }},
		{"plain.", "127.0.0.1", func(int) string { return "plain." }},
		{"", "127.0.0.1", func(int) string { return "" }},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			u := sdListen(t)
			n, _ := sdStart(t, func(o *nsqd.Options) {
				o.StatsdAddress = u.addr()
				o.StatsdInterval = 200 * time.Millisecond
				o.StatsdPrefix = tc.prefix
				o.BroadcastAddress = tc.broadcast
			})
			want := tc.want(sdHTTPPort(n))
			if got := sdGet(t, n, "/config/statsd_prefix"); got != want {
				t.Errorf("/config/statsd_prefix = %q, want %q", got, want)
			}
			n.GetTopic("sd_p")
			for _, l := range sdParse(t, u.round(t, 3*time.Second)) {
				rest, ok := strings.CutPrefix(l.name, want)
				if !ok || !(strings.HasPrefix(rest, "topic.sd_p.") || strings.HasPrefix(rest, "mem.")) {
					t.Errorf("line %q does not carry prefix %q", l.name, want)
				}
			}
		})
	}
	// the example of D-CLI-43 with an explicit broadcast HTTP port
	n, _ := sdStart(t, func(o *nsqd.Options) { o.BroadcastHTTPPort = 4151 })
	if got := sdGet(t, n, "/config/statsd_prefix"); got != "nsq.127_0_0_1_4151." {
		t.Errorf("/config/statsd_prefix = %q", got)
	}
	if got := sdGet(t, n, "/config/statsd_address"); got != "" {
		t.Errorf("/config/statsd_address = %q", got)
	}
}

// TestStatsdMemStatsOff_DCLI42: without mem stats no mem.* line is sent.
func TestStatsdMemStatsOff_DCLI42(t *testing.T) {
	u := sdListen(t)
	n, _ := sdStart(t, func(o *nsqd.Options) {
		o.StatsdAddress = u.addr()
		o.StatsdInterval = 200 * time.Millisecond
		o.StatsdMemStats = false
	})
	n.GetTopic("sd_m")
	for i := 0; i < 2; i++ {
		p := u.packet(t, 3*time.Second)
		if strings.Contains(string(p), "mem.") {
			t.Errorf("mem stats sent: %q", p)
		}
		if !strings.Contains(string(p), ".topic.sd_m.message_count:0|c\n") {
			t.Errorf("push %d: %q", i, p)
		}
	}
}

// TestStatsdSpreadAndExit_DSTATSD01: with an interval above 1s datagrams
// are spread over interval−1s, and Exit does not wait for the rest.
func TestStatsdSpreadAndExit_DSTATSD01(t *testing.T) {
	u := sdListen(t)
	n, _ := sdStart(t, func(o *nsqd.Options) {
		o.StatsdAddress = u.addr()
		o.StatsdInterval = 1500 * time.Millisecond
		o.StatsdUDPPacketSize = 1 // one line per datagram: 9 mem lines
	})
	var at []time.Time
	for {
		p := u.packet(t, 5*time.Second)
		at = append(at, time.Now())
		if strings.Contains(string(p), "mem.gc_runs") {
			break
		}
	}
	if len(at) != 9 {
		t.Fatalf("%d datagrams, want 9", len(at))
	}
	// 9 datagrams over 500ms: ~55ms apart, the last ~445ms after the first
	if d := at[8].Sub(at[0]); d < 300*time.Millisecond || d > 1200*time.Millisecond {
		t.Errorf("datagrams spread over %v, want ~445ms", d)
	}

	// Exit during a spread push returns without waiting for it
	u.packet(t, 5*time.Second) // the second push has begun
	start := time.Now()
	n.Exit()
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("Exit took %v during a statsd push", d)
	}
}

// TestStatsdDialFailure_DSTATSD01: a failed dial is logged and retried at
// the next interval; the node keeps running.
func TestStatsdDialFailure_DSTATSD01(t *testing.T) {
	n, log := sdStart(t, func(o *nsqd.Options) {
		o.StatsdAddress = "127.0.0.1:99999"
		o.StatsdInterval = 100 * time.Millisecond
	})
	sdEventually(t, 3*time.Second, "dial error logged", func() bool {
		return log.contains("failed to create UDP socket to statsd(127.0.0.1:99999)")
	})
	if got := sdGet(t, n, "/ping"); got != "OK" {
		t.Errorf("/ping = %q", got)
	}
}

// TestStatsdOptionsValidation: an unusable interval is refused at start.
func TestStatsdOptionsValidation(t *testing.T) {
	opts := nsqd.NewOptions()
	opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	opts.DataPath = t.TempDir()
	opts.Logger = &sdLog{}
	opts.StatsdAddress = "127.0.0.1:8125"
	opts.StatsdInterval = 0
	if n, err := nsqd.New(opts); err == nil {
		n.Exit()
		t.Fatal("statsd interval 0 accepted")
	}
}

// ---------------------------------------------------------------------------
// E2E processing latency

// TestE2EValidation_DCLI46: percentiles must be in (0, 1].
func TestE2EValidation_DCLI46(t *testing.T) {
	for _, p := range []float64{0, -0.5, 1.01, 2} {
		opts := nsqd.NewOptions()
		opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
		opts.DataPath = t.TempDir()
		opts.Logger = &sdLog{}
		opts.E2EProcessingLatencyPercentiles = []float64{0.99, p}
		n, err := nsqd.New(opts)
		if err == nil {
			n.Exit()
			t.Errorf("percentile %v accepted", p)
			continue
		}
		if want := fmt.Sprintf("invalid E2E processing latency percentile: %v", p); err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	}
	for _, p := range []float64{1, 0.5, 0.0001} {
		opts := nsqd.NewOptions()
		opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
		opts.DataPath = t.TempDir()
		opts.Logger = &sdLog{}
		opts.E2EProcessingLatencyPercentiles = []float64{p}
		n, err := nsqd.New(opts)
		if err != nil {
			t.Errorf("percentile %v refused: %v", p, err)
			continue
		}
		n.Exit()
	}
}

type sdE2E struct {
	Count       int               `json:"count"`
	Percentiles []json.RawMessage `json:"percentiles"`
}

// sdStatsE2E returns the raw e2e objects of a topic and of its channels.
func sdStatsE2E(t testing.TB, n *nsqd.NSQD, topic string) (string, map[string]string) {
	t.Helper()
	var doc struct {
		Topics []struct {
			TopicName string          `json:"topic_name"`
			E2E       json.RawMessage `json:"e2e_processing_latency"`
			Channels  []struct {
				ChannelName string          `json:"channel_name"`
				E2E         json.RawMessage `json:"e2e_processing_latency"`
			} `json:"channels"`
		} `json:"topics"`
	}
	body := sdGet(t, n, "/stats?format=json&topic="+topic)
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(doc.Topics) != 1 {
		t.Fatalf("topics in %s", body)
	}
	chans := map[string]string{}
	for _, c := range doc.Topics[0].Channels {
		chans[c.ChannelName] = string(c.E2E)
	}
	return string(doc.Topics[0].E2E), chans
}

var sdE2ERe = regexp.MustCompile(`^\{"count":(\d+),"percentiles":\[\{"quantile":1,"value":([0-9.e+]+)\},\{"quantile":0\.99,"value":([0-9.e+]+)\}\]\}$`)

// TestE2EStats_DE2E01_DE2E02: after FINs the channel and topic report the
// count and the configured quantiles in configured order; the text format
// lists human values.
func TestE2EStats_DE2E01_DE2E02(t *testing.T) {
	n, _ := sdStart(t, func(o *nsqd.Options) {
		o.E2EProcessingLatencyPercentiles = []float64{1.0, 0.99}
		o.E2EProcessingLatencyWindowTime = time.Minute
	})
	if got := sdGet(t, n, "/config/e2e_processing_latency_percentiles"); got != "[1,0.99]" {
		t.Errorf("/config/e2e_processing_latency_percentiles = %s", got)
	}
	if got := sdGet(t, n, "/config/e2e_processing_latency_window_time"); got != "60000000000" {
		t.Errorf("/config/e2e_processing_latency_window_time = %s", got)
	}

	// a topic without channels has nothing to aggregate
	n.GetTopic("sd_e2e_none")
	if top, _ := sdStatsE2E(t, n, "sd_e2e_none"); top != `{"count":0,"percentiles":null}` {
		t.Errorf("topic without channels: %s", top)
	}
	// a channel without FINs reports zeros for every quantile
	n.GetTopic("sd_e2e_idle").GetChannel("c")
	top, chans := sdStatsE2E(t, n, "sd_e2e_idle")
	zero := `{"count":0,"percentiles":[{"quantile":1,"value":0},{"quantile":0.99,"value":0}]}`
	if top != zero || chans["c"] != zero {
		t.Errorf("idle: topic %s channel %s, want %s", top, chans["c"], zero)
	}

	bodies := make([]string, 20)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("m%d", i)
	}
	sdTraffic(t, n, "sd_e2e", "fin", bodies)
	n.GetTopic("sd_e2e").GetChannel("idle") // merged in with no observations

	top, chans = sdStatsE2E(t, n, "sd_e2e")
	for what, raw := range map[string]string{"topic": top, "channel fin": chans["fin"]} {
		m := sdE2ERe.FindStringSubmatch(raw)
		if m == nil {
			t.Errorf("%s e2e = %s", what, raw)
			continue
		}
		if m[1] != "20" {
			t.Errorf("%s count %s, want 20", what, m[1])
		}
		v1, _ := strconv.ParseFloat(m[2], 64)
		v99, _ := strconv.ParseFloat(m[3], 64)
		if v1 < float64(time.Millisecond) || v99 > v1 || v1 > float64(10*time.Second) {
			t.Errorf("%s quantiles 1.0=%v 0.99=%v", what, v1, v99)
		}
	}
	if chans["idle"] != zero {
		t.Errorf("idle channel %s", chans["idle"])
	}

	// text: "e2e%: <v1>, <v2>" in human units
	text := sdGet(t, n, "/stats?topic=sd_e2e")
	human := `\d+\.\d(?:ns|us|ms|s)`
	for _, re := range []string{
		`\n   \[sd_e2e         \] depth: 0     be-depth: 0     msgs: 20       e2e%: ` + human + `, ` + human + `\n`,
		`\n      \[fin                      \] .* msgs: 20       e2e%: ` + human + `, ` + human + `\n`,
		`\n      \[idle                     \] .* e2e%: 0\.0ns, 0\.0ns\n`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("text stats lack %q:\n%s", re, text)
		}
	}
}

// TestE2EOff_DE2E02: without percentiles nothing is tracked.
func TestE2EOff_DE2E02(t *testing.T) {
	n, _ := sdStart(t, nil)
	sdTraffic(t, n, "sd_off", "c", []string{"a", "b"})
	top, chans := sdStatsE2E(t, n, "sd_off")
	off := `{"count":0,"percentiles":null}`
	if top != off || chans["c"] != off {
		t.Errorf("topic %s channel %s", top, chans["c"])
	}
	if text := sdGet(t, n, "/stats?topic=sd_off"); !strings.Contains(text, "msgs: 2        e2e%: \n") {
		t.Errorf("text:\n%s", text)
	}
}
