package cluster

// NSQ's own tools against our built daemons: nsqadmin, nsq_tail, to_nsq,
// nsq_stat, nsq_to_file, nsq_to_nsq, nsq_to_http and the bench tools
// bench_writer, bench_reader and bench_channels of NSQ v1.3.0, built from
// the Go module proxy as pinned (with checksums) by testdata/nsq-tools — none
// of their source is in this repository — and run unchanged against an
// nsqlookupd and two nsqd of ours. Each tool must do its job end to end:
// discover the nsqds through our lookupd, read our /stats, publish and
// consume over TCP, and nsqadmin's actions must reach both daemons. What
// they read is spec'd by D-HTTP-18 (/stats), L-HTTP-03..13 (lookupd's API),
// D-HTTP-26..32 (pause, empty, delete) and the TCP protocol.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/test/internal/daemons"
)

// toolLimit bounds each tool run and each wait on what a tool consumes. It
// is longer than waitLimit because go-nsq (in every tool) gives a consumer's
// second connection RDY 0 while the first holds all of max-in-flight, and
// retries 5 s later: the tail of a delivery can wait that long, against NSQ's
// nsqd as against ours.
const toolLimit = 30 * time.Second

// nsqToolPackages are the main packages of github.com/nsqio/nsq that
// testdata/nsq-tools pins: its apps and its bench tools.
var nsqToolPackages = []string{"apps/nsqadmin", "apps/nsq_tail", "apps/to_nsq", "apps/nsq_stat", "apps/nsq_to_file",
	"apps/nsq_to_nsq", "apps/nsq_to_http", "bench/bench_writer", "bench/bench_reader", "bench/bench_channels"}

// buildNSQTools builds NSQ's tools into dir and returns their paths by name.
// -mod=readonly: the modules are fetched as go.sum pins them, or not at all.
func buildNSQTools(t *testing.T, dir string) map[string]string {
	t.Helper()
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	paths := map[string]string{}
	for _, pkg := range nsqToolPackages {
		args = append(args, "github.com/nsqio/nsq/"+pkg)
		paths[filepath.Base(pkg)] = filepath.Join(dir, filepath.Base(pkg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(daemons.ModuleRoot(t), "test", "cluster", "testdata", "nsq-tools")
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOFLAGS=") && !strings.HasPrefix(kv, "GOWORK=") && !strings.HasPrefix(kv, "GOTOOLCHAIN=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "GOFLAGS=-mod=readonly", "GOWORK=off", "GOTOOLCHAIN=local")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building NSQ's tools (go %s in %s): %v\n%s", strings.Join(args, " "), cmd.Dir, err, out)
	}
	t.Logf("built NSQ v1.3.0's tools in %.1fs", time.Since(start).Seconds())
	return paths
}

// runTool runs a tool that ends by itself and returns its standard output;
// it must exit 0 within limit (else it is killed, by its PID).
func runTool(t *testing.T, limit time.Duration, stdin string, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (context: %v)\nstdout:\n%s\nstderr:\n%s",
			filepath.Base(bin), strings.Join(args, " "), err, ctx.Err(), stdout.String(), stderr.String())
	}
	return stdout.String()
}

// channelState is one channel of our nsqd's /stats, with what the tools'
// effects show in.
type channelState struct {
	Depth    int64 `json:"depth"`
	InFlight int   `json:"in_flight_count"`
	Messages int64 `json:"message_count"`
	Clients  int   `json:"client_count"`
	Paused   bool  `json:"paused"`
}

// channelStateOf is topic/channel on n, and whether it exists.
func (n *nsqdNode) channelStateOf(t testing.TB, topic, channel string) (channelState, bool) {
	t.Helper()
	var r struct {
		Topics []struct {
			Name     string `json:"topic_name"`
			Channels []struct {
				Name string `json:"channel_name"`
				channelState
			} `json:"channels"`
		} `json:"topics"`
	}
	if code := getJSON(t, "http://"+n.httpAddr+"/stats?format=json&topic="+q(topic), &r); code != 200 {
		t.Fatalf("nsqd GET /stats: status %d", code)
	}
	for _, ts := range r.Topics {
		for _, c := range ts.Channels {
			if ts.Name == topic && c.Name == channel {
				return c.channelState, true
			}
		}
	}
	return channelState{}, false
}

// topicPaused reports whether topic exists on n and is paused.
func (n *nsqdNode) topicPaused(t testing.TB, topic string) (paused, exists bool) {
	t.Helper()
	var r struct {
		Topics []struct {
			Name   string `json:"topic_name"`
			Paused bool   `json:"paused"`
		} `json:"topics"`
	}
	if code := getJSON(t, "http://"+n.httpAddr+"/stats?format=json&topic="+q(topic), &r); code != 200 {
		t.Fatalf("nsqd GET /stats: status %d", code)
	}
	for _, ts := range r.Topics {
		if ts.Name == topic {
			return ts.Paused, true
		}
	}
	return false, false
}

// waitChannelDrained waits until topic/channel on every node has nothing
// queued or in flight and has counted want messages in all.
func waitChannelDrained(t testing.TB, nodes []*nsqdNode, topic, channel string, want int64) {
	t.Helper()
	eventually(t, toolLimit, fmt.Sprintf("%s/%s drained after %d messages", topic, channel, want), func() (bool, string) {
		var total int64
		states := []string{}
		drained := true
		for _, n := range nodes {
			s, _ := n.channelStateOf(t, topic, channel)
			total += s.Messages
			drained = drained && s.Depth == 0 && s.InFlight == 0
			states = append(states, fmt.Sprintf("%s %+v", n.httpAddr, s))
		}
		return drained && total == want, strings.Join(states, "; ")
	})
}

// waitSubscribed waits until topic/channel has a client on every node.
func waitSubscribed(t testing.TB, nodes []*nsqdNode, topic, channel string) {
	t.Helper()
	eventually(t, waitLimit, fmt.Sprintf("a client on %s/%s of every nsqd", topic, channel), func() (bool, string) {
		states := []string{}
		ok := true
		for _, n := range nodes {
			s, _ := n.channelStateOf(t, topic, channel)
			ok = ok && s.Clients > 0
			states = append(states, fmt.Sprintf("%s %+v", n.httpAddr, s))
		}
		return ok, strings.Join(states, "; ")
	})
}

// sortedLines is s split into lines (without the empty one after the last
// newline), sorted.
func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(lines)
	return lines
}

// bodies are n distinct message bodies with prefix, sorted.
func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i)
	}
	return out
}

// adminGet decodes an nsqadmin API answer into v; nsqadmin answers 200 with
// an empty "message" only if every nsqd and lookupd it asked answered in a
// form it could read (a partial failure is named in "message").
func adminGet(t testing.TB, admin, path string, v interface{}) {
	t.Helper()
	code, b := doHTTP(t, "GET", "http://"+admin+path, "")
	adminCheck(t, "GET", path, code, b)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("nsqadmin GET %s: decoding %s: %v", path, b, err)
	}
}

// adminWantTopic requires nsqadmin's /api/topics to list topic.
func adminWantTopic(t testing.TB, admin, topic string) {
	t.Helper()
	var r struct {
		Topics []string `json:"topics"`
	}
	adminGet(t, admin, "/api/topics", &r)
	if !slices.Contains(r.Topics, topic) {
		t.Errorf("nsqadmin /api/topics: %v, want %s among them", r.Topics, topic)
	}
}

func adminDo(t testing.TB, admin, method, path, body string) {
	t.Helper()
	code, b := doHTTP(t, method, "http://"+admin+path, body)
	adminCheck(t, method, path, code, b)
}

func adminCheck(t testing.TB, method, path string, code int, b []byte) {
	t.Helper()
	var r struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &r); code != 200 || err != nil || r.Message != "" {
		t.Fatalf("nsqadmin %s %s: status %d, body %s", method, path, code, b)
	}
}

func TestNSQTools(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tools := buildNSQTools(t, filepath.Join(dir, "tools"))
	bins := daemons.Build(t, false)

	addrs := daemons.FreeAddrs(t, 8)
	l := &lookupd{tcpAddr: addrs[0], httpAddr: addrs[1]}
	lp := daemons.Start(t, daemons.Cmd{Name: "nsqlookupd", Bin: bins.NSQLookupd,
		Args: []string{"--tcp-address=" + l.tcpAddr, "--http-address=" + l.httpAddr, "--broadcast-address=127.0.0.1"}})
	lp.WaitPing(t, l.httpAddr, waitLimit)
	defer lp.Stop(t, syscall.SIGTERM, waitLimit) // after the nsqds' (defers run last first)
	nodes := []*nsqdNode{{tcpAddr: addrs[2], httpAddr: addrs[3]}, {tcpAddr: addrs[4], httpAddr: addrs[5]}}
	ports := []int{}
	for i, n := range nodes {
		fmt.Sscanf(daemons.Port(n.tcpAddr), "%d", &n.tcpPort)
		fmt.Sscanf(daemons.Port(n.httpAddr), "%d", &n.httpPort)
		ports = append(ports, n.tcpPort)
		data := filepath.Join(dir, fmt.Sprintf("data%d", i+1))
		if err := os.Mkdir(data, 0o755); err != nil {
			t.Fatal(err)
		}
		p := daemons.Start(t, daemons.Cmd{Name: fmt.Sprintf("nsqd#%d", i+1), Bin: bins.NSQD,
			Args: []string{"--data-path=" + data, "--tcp-address=" + n.tcpAddr, "--http-address=" + n.httpAddr,
				"--lookupd-tcp-address=" + l.tcpAddr, "--broadcast-address=127.0.0.1"}})
		p.WaitPing(t, n.httpAddr, waitLimit)
		defer p.Stop(t, syscall.SIGTERM, waitLimit)
	}
	// createEverywhere makes topic known on both nsqds and waits for lookupd
	// to list both: a tool's consumer asks lookupd once at start.
	createEverywhere := func(t *testing.T, topic string) {
		t.Helper()
		for _, n := range nodes {
			n.post(t, "/topic/create?topic="+q(topic))
		}
		waitLookupPorts(t, l, topic, ports...)
	}

	t.Run("to_nsq and nsq_tail", func(t *testing.T) {
		// to_nsq publishes each stdin line to every --nsqd-tcp-address;
		// nsq_tail finds both nsqds through lookupd and prints each body.
		lines := bodies("tail", 5)
		runTool(t, toolLimit, strings.Join(lines, "\n")+"\n", tools["to_nsq"],
			"--nsqd-tcp-address="+nodes[0].tcpAddr, "--nsqd-tcp-address="+nodes[1].tcpAddr, "--topic=tail")
		for _, n := range nodes {
			if ts, ok := n.topicStats(t, "tail"); !ok || ts.MessageCount != 5 || ts.Depth != 5 {
				t.Fatalf("after to_nsq, nsqd %s topic tail: %+v (exists %v), want 5 messages queued", n.httpAddr, ts, ok)
			}
		}
		waitLookupPorts(t, l, "tail", ports...)
		// the ephemeral channel is the topic's first: it gets what the topic holds
		out := runTool(t, toolLimit, "", tools["nsq_tail"], "--lookupd-http-address="+l.httpAddr, "--topic=tail", "-n", "10")
		want := append(slices.Clone(lines), lines...)
		sort.Strings(want)
		if got := sortedLines(out); !slices.Equal(got, want) {
			t.Fatalf("nsq_tail printed %q, want each of %q twice", got, lines)
		}
	})

	t.Run("nsq_stat", func(t *testing.T) {
		for _, n := range nodes {
			n.createChannel(t, "stat", "c")
		}
		waitLookupPorts(t, l, "stat", ports...)
		for i := 0; i < 4; i++ {
			nodes[0].pub(t, "stat", "m")
		}
		for i := 0; i < 3; i++ {
			nodes[1].pub(t, "stat", "m")
		}
		// one report, summed over the producers lookupd lists, or over the
		// nsqds named: ingress egress | total mem disk inflt def | req t-o msgs clients
		for _, source := range [][]string{
			{"--lookupd-http-address=" + l.httpAddr},
			{"--nsqd-http-address=" + nodes[0].httpAddr, "--nsqd-http-address=" + nodes[1].httpAddr},
		} {
			out := runTool(t, toolLimit, "", tools["nsq_stat"], append(source,
				"--topic=stat", "--channel=c", "--interval=100ms", "--count=1")...)
			rows := strings.Split(strings.TrimSpace(out), "\n")
			fields := strings.Fields(strings.ReplaceAll(rows[len(rows)-1], "|", " "))
			if want := []string{"7", "7", "0", "0", "0", "0", "0", "7", "0"}; len(fields) != 11 || !slices.Equal(fields[2:], want) {
				t.Fatalf("nsq_stat %v printed:\n%s\nwant a row with depth 7 (7 in memory), 7 messages, 0 clients", source, out)
			}
		}
	})

	t.Run("bench_writer, bench_reader, bench_channels", func(t *testing.T) {
		// NSQ's bench tools speak raw V2 (IDENTIFY without negotiation,
		// MPUB, RDY 2500, FIN) and panic on any error frame.
		nodes[0].createChannel(t, "sub_bench", "ch")
		runTool(t, toolLimit, "", tools["bench_writer"], "--nsqd-tcp-address="+nodes[0].tcpAddr,
			"--runfor=300ms", "--size=20", "--batch-size=20")
		ts, _ := nodes[0].topicStats(t, "sub_bench")
		if ts.MessageCount == 0 || ts.MessageCount%20 != 0 {
			t.Fatalf("after bench_writer, topic sub_bench: %+v, want a non-zero multiple of 20 messages", ts)
		}
		runTool(t, toolLimit, "", tools["bench_reader"], "--nsqd-tcp-address="+nodes[0].tcpAddr, "--runfor=300ms")
		ch, _ := nodes[0].channelStateOf(t, "sub_bench", "ch")
		if ch.Messages != int64(ts.MessageCount) || ch.Depth+int64(ch.InFlight) >= ch.Messages {
			t.Fatalf("after bench_reader, channel sub_bench/ch: %+v, want %d counted and some of them finished", ch, ts.MessageCount)
		}

		// bench_channels: one consumer, RDY 1, on channel ch of topics t0..t<num-1>
		p := daemons.Start(t, daemons.Cmd{Name: "bench_channels", Bin: tools["bench_channels"],
			Args: []string{"--nsqd-tcp-address=" + nodes[0].tcpAddr, "--num=20"}})
		waitSubscribed(t, nodes[:1], "t19", "ch")
		for i := 0; i < 3; i++ {
			nodes[0].pub(t, "t7", "m")
		}
		waitChannelDrained(t, nodes[:1], "t7", "ch", 3)
		p.Kill(t) // it runs until it fails
	})

	t.Run("nsq_to_file", func(t *testing.T) {
		createEverywhere(t, "file")
		outDir := filepath.Join(dir, "files")
		if err := os.Mkdir(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
		// topic discovered through lookupd's /topics by --topic-pattern
		p := daemons.Start(t, daemons.Cmd{Name: "nsq_to_file", Bin: tools["nsq_to_file"],
			Args: []string{"--lookupd-http-address=" + l.httpAddr, "--topic-pattern=^file$", "--topic-refresh=100ms",
				"--output-dir=" + outDir, "--sync-interval=100ms"}})
		waitSubscribed(t, nodes, "file", "nsq_to_file")
		want := bodies("file", 10)
		for i, b := range want {
			nodes[i%2].pub(t, "file", b)
		}
		waitChannelDrained(t, nodes, "file", "nsq_to_file", 10) // FINed once written
		p.Stop(t, syscall.SIGTERM, waitLimit)
		files, _ := filepath.Glob(filepath.Join(outDir, "file.*.log"))
		var all strings.Builder
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
		}
		if got := sortedLines(all.String()); !slices.Equal(got, want) {
			t.Fatalf("nsq_to_file wrote %q in %v, want %q", got, files, want)
		}
	})

	t.Run("nsq_to_nsq", func(t *testing.T) {
		createEverywhere(t, "relay")
		p := daemons.Start(t, daemons.Cmd{Name: "nsq_to_nsq", Bin: tools["nsq_to_nsq"],
			Args: []string{"--lookupd-http-address=" + l.httpAddr, "--topic=relay", "--channel=fwd",
				"--destination-nsqd-tcp-address=" + nodes[1].tcpAddr, "--destination-topic=relayed"}})
		waitSubscribed(t, nodes, "relay", "fwd")
		nodes[1].createChannel(t, "relayed", "out")
		want := bodies("relay", 8)
		for i, b := range want {
			nodes[i%2].pub(t, "relay", b)
		}
		waitChannelDrained(t, nodes, "relay", "fwd", 8)
		p.Stop(t, syscall.SIGTERM, waitLimit)
		out := runTool(t, toolLimit, "", tools["nsq_tail"], "--nsqd-tcp-address="+nodes[1].tcpAddr,
			"--topic=relayed", "--channel=out", "-n", "8")
		if got := sortedLines(out); !slices.Equal(got, want) {
			t.Fatalf("relayed to nsqd#2: %q, want %q", got, want)
		}
	})

	t.Run("nsq_to_http", func(t *testing.T) {
		var mu sync.Mutex
		got := []string{}
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, string(b))
			mu.Unlock()
		}))
		defer hook.Close()
		createEverywhere(t, "hook")
		p := daemons.Start(t, daemons.Cmd{Name: "nsq_to_http", Bin: tools["nsq_to_http"],
			Args: []string{"--lookupd-http-address=" + l.httpAddr, "--topic=hook", "--post=" + hook.URL + "/hook"}})
		waitSubscribed(t, nodes, "hook", "nsq_to_http")
		want := bodies("hook", 6)
		for i, b := range want {
			nodes[i%2].pub(t, "hook", b)
		}
		waitChannelDrained(t, nodes, "hook", "nsq_to_http", 6)
		p.Stop(t, syscall.SIGTERM, waitLimit)
		mu.Lock()
		defer mu.Unlock()
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Fatalf("nsq_to_http posted %q, want %q", got, want)
		}
	})

	t.Run("nsqadmin without lookupd", func(t *testing.T) {
		// --nsqd-http-address: nsqadmin learns topics and nodes from each
		// nsqd's /stats and /info; nsq_stat's channel stat/c holds 7 messages
		admin := addrs[7]
		ap := daemons.Start(t, daemons.Cmd{Name: "nsqadmin (nsqd mode)", Bin: tools["nsqadmin"],
			Args: []string{"--http-address=" + admin, "--nsqd-http-address=" + nodes[0].httpAddr,
				"--nsqd-http-address=" + nodes[1].httpAddr}})
		ap.WaitPing(t, admin, waitLimit)
		defer ap.Stop(t, syscall.SIGTERM, waitLimit)
		var ns struct {
			Nodes []struct {
				Version string `json:"version"`
			} `json:"nodes"`
		}
		adminGet(t, admin, "/api/nodes", &ns)
		if len(ns.Nodes) != 2 || ns.Nodes[0].Version != "1.3.0" || ns.Nodes[1].Version != "1.3.0" {
			t.Errorf("/api/nodes: %+v, want our 2 nsqd at 1.3.0", ns)
		}
		adminWantTopic(t, admin, "stat")
		var channel struct {
			Depth        int64 `json:"depth"`
			MessageCount int64 `json:"message_count"`
		}
		adminGet(t, admin, "/api/topics/stat/c", &channel)
		if channel.Depth != 7 || channel.MessageCount != 7 {
			t.Errorf("/api/topics/stat/c: %+v, want 7 messages queued", channel)
		}
		adminDo(t, admin, "POST", "/api/topics/stat/c", `{"action":"pause"}`)
		for _, n := range nodes {
			if s, _ := n.channelStateOf(t, "stat", "c"); !s.Paused {
				t.Errorf("after nsqadmin (nsqd mode) pause, nsqd %s channel stat/c %+v", n.httpAddr, s)
			}
		}
	})

	t.Run("nsqadmin", func(t *testing.T) {
		admin := addrs[6]
		ap := daemons.Start(t, daemons.Cmd{Name: "nsqadmin", Bin: tools["nsqadmin"],
			Args: []string{"--http-address=" + admin, "--lookupd-http-address=" + l.httpAddr}})
		ap.WaitPing(t, admin, waitLimit)
		defer ap.Stop(t, syscall.SIGTERM, waitLimit)

		// nsqadmin creates a topic and channel in lookupd
		adminDo(t, admin, "POST", "/api/topics", `{"topic":"adm","channel":"c1"}`)
		waitChannels(t, l, "adm", "c1")
		for i, n := range nodes {
			n.createChannel(t, "adm", "c1")
			for j := 0; j < 4-i; j++ {
				n.pub(t, "adm", "m")
			}
		}
		waitLookupPorts(t, l, "adm", ports...)

		var ns struct {
			Nodes []struct {
				TCPPort   int    `json:"tcp_port"`
				HTTPPort  int    `json:"http_port"`
				Version   string `json:"version"`
				OutOfDate bool   `json:"out_of_date"`
			} `json:"nodes"`
		}
		adminGet(t, admin, "/api/nodes", &ns)
		if len(ns.Nodes) != 2 {
			t.Fatalf("/api/nodes: %+v, want our 2 nsqd", ns)
		}
		for _, nd := range ns.Nodes {
			if nd.Version != "1.3.0" || nd.OutOfDate || (nd.TCPPort != nodes[0].tcpPort && nd.TCPPort != nodes[1].tcpPort) {
				t.Errorf("/api/nodes: node %+v", nd)
			}
		}
		adminWantTopic(t, admin, "adm")
		type aggregate struct {
			Depth        int64 `json:"depth"`
			MessageCount int64 `json:"message_count"`
			Nodes        []struct {
				Node         string `json:"node"`
				MessageCount int64  `json:"message_count"`
			} `json:"nodes"`
		}
		var topic, channel aggregate
		adminGet(t, admin, "/api/topics/adm", &topic)
		adminGet(t, admin, "/api/topics/adm/c1", &channel)
		if topic.MessageCount != 7 || topic.Depth != 0 || len(topic.Nodes) != 2 {
			t.Errorf("/api/topics/adm: %+v, want 7 messages over 2 nodes, all passed on to the channel", topic)
		}
		if channel.MessageCount != 7 || channel.Depth != 7 || len(channel.Nodes) != 2 {
			t.Errorf("/api/topics/adm/c1: %+v, want 7 messages queued over 2 nodes", channel)
		}
		var node struct {
			TotalMessages int64 `json:"total_messages"`
		}
		adminGet(t, admin, "/api/nodes/"+nodes[0].httpAddr, &node)
		if node.TotalMessages < 4 {
			t.Errorf("/api/nodes/%s: total_messages %d, want at least adm's 4", nodes[0].httpAddr, node.TotalMessages)
		}
		var counter struct {
			Stats map[string]struct {
				MessageCount int64 `json:"message_count"`
			} `json:"stats"`
		}
		adminGet(t, admin, "/api/counter", &counter)
		if a, b := counter.Stats["adm:c1:"+nodes[0].httpAddr], counter.Stats["adm:c1:"+nodes[1].httpAddr]; a.MessageCount != 4 || b.MessageCount != 3 {
			t.Errorf("/api/counter: %+v, want adm:c1 4 and 3 on the two nodes", counter.Stats)
		}

		// actions reach both nsqds
		channelOn := func(n *nsqdNode) channelState { s, _ := n.channelStateOf(t, "adm", "c1"); return s }
		for _, action := range []string{"pause", "unpause"} {
			adminDo(t, admin, "POST", "/api/topics/adm/c1", `{"action":"`+action+`"}`)
			for _, n := range nodes {
				if got := channelOn(n).Paused; got != (action == "pause") {
					t.Errorf("after nsqadmin channel %s, nsqd %s channel paused=%v", action, n.httpAddr, got)
				}
			}
			adminDo(t, admin, "POST", "/api/topics/adm", `{"action":"`+action+`"}`)
			for _, n := range nodes {
				if got, _ := n.topicPaused(t, "adm"); got != (action == "pause") {
					t.Errorf("after nsqadmin topic %s, nsqd %s topic paused=%v", action, n.httpAddr, got)
				}
			}
		}
		adminDo(t, admin, "POST", "/api/topics/adm/c1", `{"action":"empty"}`)
		for _, n := range nodes {
			if s := channelOn(n); s.Depth != 0 {
				t.Errorf("after nsqadmin empty, nsqd %s channel %+v", n.httpAddr, s)
			}
		}
		adminDo(t, admin, "DELETE", "/api/topics/adm/c1", "")
		for _, n := range nodes {
			if _, exists := n.channelStateOf(t, "adm", "c1"); exists {
				t.Errorf("after nsqadmin channel delete, nsqd %s still has adm/c1", n.httpAddr)
			}
		}
		waitChannels(t, l, "adm")
		// tombstone nsqd#2 for the topic: lookupd stops listing it
		adminDo(t, admin, "DELETE", "/api/nodes/"+nodes[1].httpAddr, `{"topic":"adm"}`)
		waitLookupPorts(t, l, "adm", nodes[0].tcpPort)
		adminDo(t, admin, "DELETE", "/api/topics/adm", "")
		if _, exists := nodes[0].topicPaused(t, "adm"); exists {
			t.Errorf("after nsqadmin topic delete, nsqd#1 still has topic adm")
		}
		eventually(t, waitLimit, "topic adm gone from lookupd /topics", func() (bool, string) {
			ts := l.topics(t)
			return !slices.Contains(ts, "adm"), fmt.Sprintf("%v", ts)
		})
	})
}
