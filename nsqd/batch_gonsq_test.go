package nsqd_test

// MPUB and HTTP /mpub through the disk queues, which write the messages of
// one publish as batch records (nsqd/message_batch.go): go-nsq producers
// and consumers, depths read from /stats over HTTP, a clean restart in
// between. Without a crash every message is delivered exactly once per
// channel.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

type btStats struct {
	Topics []struct {
		TopicName    string `json:"topic_name"`
		Depth        int64  `json:"depth"`
		BackendDepth int64  `json:"backend_depth"`
		Channels     []struct {
			ChannelName   string `json:"channel_name"`
			Depth         int64  `json:"depth"`
			BackendDepth  int64  `json:"backend_depth"`
			InFlightCount int    `json:"in_flight_count"`
		} `json:"channels"`
	} `json:"topics"`
}

// btDepths returns the topic's depth and backend depth and each channel's
// from /stats.
func btDepths(t testing.TB, node *clNode, topic string) (depth, backend int64, chans map[string][2]int64) {
	t.Helper()
	resp, err := http.Get("http://" + node.n.RealHTTPAddr().String() + "/stats?format=json&topic=" + topic)
	if err != nil {
		t.Fatalf("GET /stats: %v", err)
	}
	defer resp.Body.Close()
	var s btStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	chans = map[string][2]int64{}
	for _, tp := range s.Topics {
		if tp.TopicName != topic {
			continue
		}
		for _, c := range tp.Channels {
			chans[c.ChannelName] = [2]int64{c.Depth, c.BackendDepth}
		}
		return tp.Depth, tp.BackendDepth, chans
	}
	return -1, -1, chans
}

// btHTTPMPub posts bodies to /mpub, binary or newline-separated.
func btHTTPMPub(t testing.TB, node *clNode, topic string, bodies []string, binaryMode bool) {
	t.Helper()
	var body []byte
	url := "http://" + node.n.RealHTTPAddr().String() + "/mpub?topic=" + topic
	if binaryMode {
		url += "&binary=true"
		body = binary.BigEndian.AppendUint32(nil, uint32(len(bodies)))
		for _, b := range bodies {
			body = binary.BigEndian.AppendUint32(body, uint32(len(b)))
			body = append(body, b...)
		}
	} else {
		body = []byte(strings.Join(bodies, "\n"))
	}
	resp, err := http.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /mpub: %v", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 {
		t.Fatalf("POST /mpub: %d %s", resp.StatusCode, b)
	}
}

// btPublishMix publishes bodies from 3 go-nsq producers (MPUB of 1..150,
// some PUBs) and HTTP /mpub (binary and text) at the same time.
func btPublishMix(t *testing.T, node *clNode, topic string, bodies []string) {
	t.Helper()
	parts := 5
	var wg sync.WaitGroup
	for w := 0; w < parts; w++ {
		var mine []string
		for i := w; i < len(bodies); i += parts {
			mine = append(mine, bodies[i])
		}
		wg.Add(1)
		go func(w int, mine []string) {
			defer wg.Done()
			var p *nsq.Producer
			if w < 3 {
				p = clProducer(t, node.addr())
			}
			for i, k := 0, 0; i < len(mine); k++ {
				n := min(1+(k*37+w*11)%150, len(mine)-i)
				batch := mine[i : i+n]
				switch {
				case w == 3:
					btHTTPMPub(t, node, topic, batch, true)
				case w == 4:
					btHTTPMPub(t, node, topic, batch, false)
				case n < 3:
					for _, b := range batch {
						if err := p.Publish(topic, []byte(b)); err != nil {
							t.Errorf("PUB: %v", err)
							return
						}
					}
				default:
					msgs := make([][]byte, n)
					for j, b := range batch {
						msgs[j] = []byte(b)
					}
					if err := p.MultiPublish(topic, msgs); err != nil {
						t.Errorf("MPUB: %v", err)
						return
					}
				}
				i += n
			}
		}(w, mine)
	}
	wg.Wait()
}

// btWantChannelDepths fails unless each named channel of topic has the
// given [depth, backend depth] in /stats.
func btWantChannelDepths(t testing.TB, node *clNode, topic string, want map[string][2]int64) {
	t.Helper()
	_, _, chans := btDepths(t, node, topic)
	for name, w := range want {
		if d := chans[name]; d != w {
			t.Fatalf("%s: depth/backend %v, want %v", name, d, w)
		}
	}
}

func btConsume(t *testing.T, node *clNode, topic, channel string) *clSet {
	seen := newCLSet()
	clConsumer(t, node.addr(), topic, channel, nil, nsq.HandlerFunc(func(m *nsq.Message) error {
		seen.add(string(m.Body))
		return nil
	}))
	return seen
}

// Channels spill over to disk: "live" is consumed while the publishers
// run, "later" only after a clean restart. /stats counts messages, not
// records, before and after the restart.
func TestGoNSQBatchThroughDisk(t *testing.T) {
	for _, memSize := range []int64{0, 20} {
		t.Run(fmt.Sprintf("mem-queue-size=%d", memSize), func(t *testing.T) {
			opts := clOpts(t, "")
			opts.MemQueueSize = memSize
			opts.MaxBytesPerFile = 64 * 1024
			node := clStart(t, opts)
			const topicName, n = "gonsq_batch", 6000
			topic := node.n.GetTopic(topicName)
			topic.GetChannel("live")
			topic.GetChannel("later")
			live := btConsume(t, node, topicName, "live")

			bodies := clBodies(fmt.Sprintf("b%d", memSize), n)
			btPublishMix(t, node, topicName, bodies)
			clWaitUnique(t, live, n, 30*time.Second, "live channel")

			_, _, chans := btDepths(t, node, topicName)
			if d := chans["later"]; d[0] != n || d[1] < n-memSize {
				t.Errorf("later: depth %d backend_depth %d, want %d and >= %d", d[0], d[1], n, n-memSize)
			}
			node.exit()
			time.Sleep(200 * time.Millisecond)
			clCheckExactlyOnce(t, "live", live.snapshot(), bodies)
			// the MPUBs were written as batches: far fewer records than
			// messages
			if recs := btRecords(t, opts.DataPath, topicName+":later"); recs == 0 || recs*3 > n {
				t.Errorf("%d records on disk for %d messages", recs, n)
			} else {
				t.Logf("%d messages in %d records", n, recs)
			}

			opts2 := clOpts(t, opts.DataPath)
			opts2.MemQueueSize = memSize
			opts2.MaxBytesPerFile = opts.MaxBytesPerFile
			node = clStart(t, opts2)
			clEventually(t, 5*time.Second, func() bool {
				_, _, chans := btDepths(t, node, topicName)
				return chans["later"][0] == n
			}, "later depth %d after the restart", n)
			_, _, chans = btDepths(t, node, topicName)
			if d := chans["later"]; d[0] != n || d[1] != n {
				t.Errorf("later after the restart: depth %d backend_depth %d, want %d", d[0], d[1], n)
			}
			later := btConsume(t, node, topicName, "later")
			clWaitUnique(t, later, n, 30*time.Second, "later channel")
			time.Sleep(200 * time.Millisecond)
			clCheckExactlyOnce(t, "later", later.snapshot(), bodies)
			clEventually(t, 5*time.Second, func() bool {
				d, bd, chans := btDepths(t, node, topicName)
				return d == 0 && bd == 0 && chans["later"] == [2]int64{0, 0}
			}, "topic and channel drained")
		})
	}
}

// A topic without channels keeps MPUBs in its own disk queue (as batch
// records); its depth counts messages; a channel created later gets each
// message once.
func TestGoNSQBatchTopicQueue(t *testing.T) {
	opts := clOpts(t, "")
	opts.MemQueueSize = 0
	node := clStart(t, opts)
	const topicName, n = "gonsq_batch_topic", 3000
	node.n.GetTopic(topicName)
	bodies := clBodies("t", n)
	btPublishMix(t, node, topicName, bodies)
	if d, bd, _ := btDepths(t, node, topicName); d != n || bd != n {
		t.Errorf("topic depth %d backend_depth %d, want %d", d, bd, n)
	}
	node.n.GetTopic(topicName).GetChannel("c")
	seen := btConsume(t, node, topicName, "c")
	clWaitUnique(t, seen, n, 30*time.Second, "channel c")
	time.Sleep(200 * time.Millisecond)
	clCheckExactlyOnce(t, "topic queue", seen.snapshot(), bodies)
	clEventually(t, 5*time.Second, func() bool {
		d, bd, chans := btDepths(t, node, topicName)
		return d == 0 && bd == 0 && chans["c"] == [2]int64{0, 0}
	}, "topic and channel drained")
}

// btRecords counts the go-diskqueue records ([int32 length][data]) in the
// segments of queue name.
func btRecords(t testing.TB, dataPath, name string) int {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dataPath, name+".diskqueue.*.dat"))
	n := 0
	for _, s := range segs {
		if strings.HasSuffix(s, ".meta.dat") || strings.HasSuffix(s, ".cursor.dat") {
			continue
		}
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= 4 {
			l := int(binary.BigEndian.Uint32(b))
			if 4+l > len(b) {
				break
			}
			b = b[4+l:]
			n++
		}
	}
	return n
}

// An MPUB whose messages all went to disk queues lends its blocks to the
// next MPUB (recycleMPUB); one that left any message in memory must not.
// Channel a fills first, b is created later, so batches go: a memory; a
// memory+disk; a disk + b memory; both disk (recycled); ... Every body must
// come out intact, exactly once per channel, over TCP and HTTP /mpub
// (binary and text).
func TestMPUBBlockReuseKeepsMemoryMessagesIntact(t *testing.T) {
	for _, via := range []string{"tcp", "http-binary", "http-text"} {
		t.Run(via, func(t *testing.T) {
			opts := clOpts(t, "")
			opts.MemQueueSize = 150
			opts.MaxBytesPerFile = 64 * 1024
			node := clStart(t, opts)
			const topicName = "mpub_reuse"
			topic := node.n.GetTopic(topicName)
			topic.GetChannel("a")
			p := clProducer(t, node.addr())
			publish := func(bodies []string) {
				if via == "tcp" {
					clMultiPublish(t, p, topicName, bodies, 100)
					return
				}
				for i := 0; i < len(bodies); i += 100 {
					btHTTPMPub(t, node, topicName, bodies[i:min(i+100, len(bodies))], via == "http-binary")
				}
			}
			first := clBodies("first", 200)
			publish(first)
			topic.GetChannel("b")
			rest := clBodies("rest", 1000)
			publish(rest)

			btWantChannelDepths(t, node, topicName, map[string][2]int64{"a": {1200, 1050}, "b": {1000, 850}})
			a := btConsume(t, node, topicName, "a")
			b := btConsume(t, node, topicName, "b")
			clWaitUnique(t, a, 1200, 30*time.Second, "channel a")
			clWaitUnique(t, b, 1000, 30*time.Second, "channel b")
			time.Sleep(100 * time.Millisecond)
			clCheckExactlyOnce(t, "a", a.snapshot(), append(append([]string{}, first...), rest...))
			clCheckExactlyOnce(t, "b", b.snapshot(), rest)
		})
	}
}

// A PUB whose message went to disk queues only lends its Message and body
// to the connection's next PUB (clientV2.pubSpare); one that any channel
// kept in memory (its queue, a consumer, a copy for another channel) must
// not. Channel a fills first and spills, b is created later (its first
// messages stay in memory while a's go to disk, sharing the body), then
// both spill, then both are consumed while more is published (direct
// deliveries and memory queues again). Bodies of 0-6,000 extra bytes
// cross the 4 KiB a connection keeps. Every body must come out intact,
// exactly once per channel.
func TestPUBMessageReuseKeepsEveryBody(t *testing.T) {
	opts := clOpts(t, "")
	opts.MemQueueSize = 20
	opts.MaxBytesPerFile = 256 * 1024
	node := clStart(t, opts)
	const topicName = "pub_reuse"
	topic := node.n.GetTopic(topicName)
	topic.GetChannel("a")
	p := clProducer(t, node.addr())
	bodies := func(prefix string, n int) []string {
		extra := []int{0, 150, 3000, 6000, 40}
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%05d-", prefix, i) + strings.Repeat(string(rune('a'+i%26)), extra[i%len(extra)])
		}
		return out
	}
	publish := func(bodies []string) {
		for _, b := range bodies {
			if err := p.Publish(topicName, []byte(b)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
	}
	first := bodies("first", 200)
	publish(first)
	topic.GetChannel("b")
	rest := bodies("rest", 300)
	publish(rest)
	btWantChannelDepths(t, node, topicName, map[string][2]int64{"a": {500, 480}, "b": {300, 280}})

	a := btConsume(t, node, topicName, "a")
	b := btConsume(t, node, topicName, "b")
	live := bodies("live", 300)
	publish(live)
	clWaitUnique(t, a, 800, 30*time.Second, "channel a")
	clWaitUnique(t, b, 600, 30*time.Second, "channel b")
	time.Sleep(100 * time.Millisecond)
	clCheckExactlyOnce(t, "a", a.snapshot(), append(append(append([]string{}, first...), rest...), live...))
	clCheckExactlyOnce(t, "b", b.snapshot(), append(append([]string{}, rest...), live...))
}

// Single PUBs and DPUBs to a topic while one of its channels spills to disk
// (no consumer, memory queue of 50) and another is consumed: every message
// reaches every channel exactly once, the topic empties, the spilling
// channel counts all of them (mostly on disk), and the DPUBs keep their
// delay in both channels.
func TestPUBWhileAChannelSpills(t *testing.T) {
	opts := clOpts(t, "")
	opts.MemQueueSize = 50
	node := clStart(t, opts)
	const topicName, n, dpubs = "pub_spill", 3500, 5
	topic := node.n.GetTopic(topicName)
	topic.GetChannel("full")
	// consumes topicName/channel: bodies "d-*" (DPUBs) are timed, the rest
	// counted
	consume := func(channel string) (*clSet, func() map[string]time.Time) {
		seen := newCLSet()
		var mu sync.Mutex
		deferred := map[string]time.Time{}
		clConsumer(t, node.addr(), topicName, channel, nil, nsq.HandlerFunc(func(m *nsq.Message) error {
			if b := string(m.Body); strings.HasPrefix(b, "d-") {
				mu.Lock()
				if _, ok := deferred[b]; !ok {
					deferred[b] = time.Now()
				}
				mu.Unlock()
				return nil
			}
			seen.add(string(m.Body))
			return nil
		}))
		return seen, func() map[string]time.Time {
			mu.Lock()
			defer mu.Unlock()
			return maps.Clone(deferred)
		}
	}
	live, liveDeferred := consume("live")

	p := clProducer(t, node.addr())
	bodies := clBodies("p", n)
	clPublishAsync(t, p, topicName, bodies[:3000])
	published := time.Now()
	for i := 0; i < dpubs; i++ {
		if err := p.DeferredPublish(topicName, 300*time.Millisecond, []byte(fmt.Sprintf("d-%d", i))); err != nil {
			t.Fatalf("DPUB: %v", err)
		}
	}
	clPublishAsync(t, p, topicName, bodies[3000:])

	clWaitUnique(t, live, n, 30*time.Second, "live channel")
	clEventually(t, 10*time.Second, func() bool { return len(liveDeferred()) == dpubs }, "live: %d DPUBs", dpubs)
	for b, at := range liveDeferred() {
		if at.Sub(published) < 300*time.Millisecond {
			t.Errorf("live: DPUB %s delivered %v after publishing, before its 300ms", b, at.Sub(published))
		}
	}
	clEventually(t, 10*time.Second, func() bool {
		d, _, chans := btDepths(t, node, topicName)
		return d == 0 && chans["full"][0] == n+dpubs
	}, "topic empty and channel full holding all %d", n+dpubs)
	if _, _, chans := btDepths(t, node, topicName); chans["full"][1] < n+dpubs-50 {
		t.Errorf("full: backend depth %d, want >= %d (memory holds 50)", chans["full"][1], n+dpubs-50)
	}
	full, fullDeferred := consume("full")
	clWaitUnique(t, full, n, 30*time.Second, "full channel")
	clEventually(t, 10*time.Second, func() bool { return len(fullDeferred()) == dpubs }, "full: %d DPUBs", dpubs)
	time.Sleep(100 * time.Millisecond)
	clCheckExactlyOnce(t, "live", live.snapshot(), bodies)
	clCheckExactlyOnce(t, "full", full.snapshot(), bodies)
}
