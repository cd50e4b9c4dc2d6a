// Package e2e runs a small cluster of the built binaries (2 nsqlookupd,
// 3 nsqd) with go-nsq v1.1.0 clients and checks at-least-once delivery
// across a graceful nsqd restart: every message a Producer got OK for is
// delivered to the Consumers, and duplicates are counted. See
// docs/compatibility.md.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/test/internal/daemons"
)

const (
	topicName   = "e2e"
	channelName = "ch"

	totalMsgs = 20000
	// nsqd #1 gets SIGTERM once this share of the messages got OK, ...
	stopShare = 0.4
	// ... and publishing stops at this share until it is back up, so both
	// the downtime and the restarted node see traffic.
	gateShare = 0.6

	workers   = 6  // publishing goroutines; the last half use MPUB
	mpubBatch = 25 // messages per MultiPublish

	deliveryLimit = 60 * time.Second // for the last OK'd message to arrive

	// Consumers handle a message in about handleTime on handlers goroutines
	// each (at most ~4000 msg/s for the two), slower than the publishers,
	// so nsqd#1 holds a backlog (memory and disk queue) when it is stopped.
	handleTime = time.Millisecond
	handlers   = 2
)

// waitLimit bounds every wait for a daemon; never reached when things work.
const waitLimit = 15 * time.Second

var httpClient = &http.Client{Timeout: 5 * time.Second}

func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }

// body is message i's payload; the handler checks it byte for byte.
func body(i int) []byte {
	return fmt.Appendf(nil, "msg-%05d-%s", i, strings.Repeat(strconv.Itoa(i%10), 64))
}

// ---------------------------------------------------------------------------
// cluster

type lookupNode struct {
	tcpAddr, httpAddr string
	p                 *daemons.Proc
}

type nsqdNode struct {
	idx                        int
	tcpAddr, httpAddr, dataDir string
	args                       []string
	p                          *daemons.Proc
}

func (n *nsqdNode) start(t *testing.T, bin string) {
	t.Helper()
	n.p = daemons.Start(t, daemons.Cmd{Name: fmt.Sprintf("nsqd#%d", n.idx), Bin: bin, Args: n.args})
	n.p.WaitPing(t, n.httpAddr, waitLimit)
}

func httpPost(t *testing.T, u string) {
	t.Helper()
	resp, err := httpClient.Post(u, "", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", u, resp.Status)
	}
}

func getJSON(u string, v any) error {
	resp, err := httpClient.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type channelStats struct {
	Depth         int64             `json:"depth"`
	InFlightCount int               `json:"in_flight_count"`
	DeferredCount int               `json:"deferred_count"`
	MessageCount  uint64            `json:"message_count"`
	RequeueCount  uint64            `json:"requeue_count"`
	TimeoutCount  uint64            `json:"timeout_count"`
	Clients       []json.RawMessage `json:"clients"`
}

// chanStats reads topic/channel from nsqd /stats (zero value if absent).
func (n *nsqdNode) chanStats() (topicDepth int64, cs channelStats, err error) {
	var st struct {
		Topics []struct {
			TopicName string `json:"topic_name"`
			Depth     int64  `json:"depth"`
			Channels  []struct {
				ChannelName string `json:"channel_name"`
				channelStats
			} `json:"channels"`
		} `json:"topics"`
	}
	q := url.Values{"format": {"json"}, "topic": {topicName}, "channel": {channelName}}
	if err := getJSON("http://"+n.httpAddr+"/stats?"+q.Encode(), &st); err != nil {
		return 0, cs, err
	}
	for _, tp := range st.Topics {
		if tp.TopicName != topicName {
			continue
		}
		for _, c := range tp.Channels {
			if c.ChannelName == channelName {
				return tp.Depth, c.channelStats, nil
			}
		}
		return tp.Depth, cs, nil
	}
	return 0, cs, nil
}

// lookupPorts is the sorted TCP ports lookupd lists for the topic, and
// whether it knows the channel.
func (l *lookupNode) lookupPorts() ([]int, bool, error) {
	var r struct {
		Channels  []string `json:"channels"`
		Producers []struct {
			BroadcastAddress string `json:"broadcast_address"`
			TCPPort          int    `json:"tcp_port"`
		} `json:"producers"`
	}
	if err := getJSON("http://"+l.httpAddr+"/lookup?topic="+topicName, &r); err != nil {
		return nil, false, err
	}
	var ports []int
	for _, p := range r.Producers {
		if p.BroadcastAddress == "127.0.0.1" {
			ports = append(ports, p.TCPPort)
		}
	}
	slices.Sort(ports)
	return ports, slices.Contains(r.Channels, channelName), nil
}

// eventually polls cond until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (last: %s)", what, limit, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// go-nsq logging into t.Log, silenced once the test is over

type tLogger struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	closed bool
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
	if !l.closed {
		l.t.Log(l.prefix + s)
	}
	return nil
}

// ---------------------------------------------------------------------------
// producers

// pubSlot holds the current go-nsq Producer for one nsqd. A Producer that
// failed is stopped and replaced by a new one instead of being left to
// reconnect: go-nsq v1.1.0's Producer has a data race on reconnect
// (router() logs w.conn.String() after w.wg.Done(), while the next
// connect() assigns w.conn; producer.go:366 vs :308), which -race reports
// in this test process. A fresh Producer per connection avoids it and
// publishes exactly the same way.
type pubSlot struct {
	addr string
	mu   sync.Mutex
	p    *nsq.Producer
}

func (s *pubSlot) get(t *testing.T) *nsq.Producer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		p, err := nsq.NewProducer(s.addr, nsq.NewConfig())
		if err != nil {
			t.Errorf("NewProducer(%s): %v", s.addr, err) // not Fatal: publisher goroutines call this
			return nil
		}
		// silent: errors come back from Publish and are tallied there
		p.SetLogger(nil, nsq.LogLevelError)
		s.p = p
	}
	return s.p
}

// replace drops old if it is still the current Producer.
func (s *pubSlot) replace(old *nsq.Producer) {
	s.mu.Lock()
	if s.p != old {
		s.mu.Unlock()
		return
	}
	s.p = nil
	s.mu.Unlock()
	old.Stop()
}

func (s *pubSlot) stop() {
	s.mu.Lock()
	p := s.p
	s.p = nil
	s.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

// ---------------------------------------------------------------------------

func TestClusterRestartAtLeastOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bins := daemons.Build(t, daemons.RaceEnabled)
	addrs := daemons.FreeAddrs(t, 10)

	// 2 nsqlookupd
	lookups := make([]*lookupNode, 2)
	var lookupTCP, lookupHTTP []string
	for i := range lookups {
		l := &lookupNode{tcpAddr: addrs[2*i], httpAddr: addrs[2*i+1]}
		l.p = daemons.Start(t, daemons.Cmd{Name: fmt.Sprintf("nsqlookupd#%d", i), Bin: bins.NSQLookupd,
			Args: []string{"--tcp-address=" + l.tcpAddr, "--http-address=" + l.httpAddr, "--broadcast-address=127.0.0.1"}})
		l.p.WaitPing(t, l.httpAddr, waitLimit)
		lookups[i] = l
		lookupTCP = append(lookupTCP, l.tcpAddr)
		lookupHTTP = append(lookupHTTP, l.httpAddr)
	}

	// 3 nsqd, each registered with both; a small memory queue so a good part
	// of the backlog goes through the disk queue
	nodes := make([]*nsqdNode, 3)
	var wantPorts []int
	for i := range nodes {
		n := &nsqdNode{idx: i, tcpAddr: addrs[4+2*i], httpAddr: addrs[4+2*i+1],
			dataDir: filepath.Join(dir, fmt.Sprintf("data%d", i))}
		if err := os.Mkdir(n.dataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		n.args = []string{"--data-path=" + n.dataDir,
			"--tcp-address=" + n.tcpAddr, "--http-address=" + n.httpAddr,
			"--broadcast-address=127.0.0.1", "--mem-queue-size=500"}
		for _, la := range lookupTCP {
			n.args = append(n.args, "--lookupd-tcp-address="+la)
		}
		n.start(t, bins.NSQD)
		httpPost(t, "http://"+n.httpAddr+"/topic/create?topic="+topicName)
		httpPost(t, "http://"+n.httpAddr+"/channel/create?topic="+topicName+"&channel="+channelName)
		nodes[i] = n
		p, _ := strconv.Atoi(daemons.Port(n.tcpAddr))
		wantPorts = append(wantPorts, p)
	}
	slices.Sort(wantPorts)
	waitLookups := func(when string) {
		t.Helper()
		for i, l := range lookups {
			eventually(t, waitLimit, fmt.Sprintf("%s: nsqlookupd#%d lists the 3 nsqd for %s/%s", when, i, topicName, channelName),
				func() (bool, string) {
					ports, hasCh, err := l.lookupPorts()
					return err == nil && hasCh && slices.Equal(ports, wantPorts), fmt.Sprintf("ports %v channel %v err %v", ports, hasCh, err)
				})
		}
	}
	waitLookups("start")

	// --- consumers: 2 go-nsq Consumers on one channel, discovering through
	// both lookupds
	var (
		deliveries = make([]atomic.Int32, totalMsgs)
		badBodies  atomic.Int64
		received   atomic.Int64
	)
	handler := nsq.HandlerFunc(func(m *nsq.Message) error {
		var i int
		if _, err := fmt.Sscanf(string(m.Body), "msg-%05d-", &i); err != nil || i < 0 || i >= totalMsgs || !bytes.Equal(m.Body, body(i)) {
			badBodies.Add(1)
			return nil
		}
		deliveries[i].Add(1)
		received.Add(1)
		time.Sleep(handleTime)
		return nil
	})
	consumers := make([]*nsq.Consumer, 2)
	for i := range consumers {
		cfg := nsq.NewConfig()
		cfg.LookupdPollInterval = 250 * time.Millisecond
		cfg.MaxInFlight = 60
		cfg.MaxAttempts = 0 // never give up on a redelivered message
		c, err := nsq.NewConsumer(topicName, channelName, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.SetLogger(newTLogger(t, fmt.Sprintf("consumer#%d: ", i)), nsq.LogLevelWarning)
		c.AddConcurrentHandlers(handler, handlers)
		if err := c.ConnectToNSQLookupds(lookupHTTP); err != nil {
			t.Fatal(err)
		}
		consumers[i] = c
	}
	stopConsumers := func() {
		for _, c := range consumers {
			c.Stop()
		}
		for i, c := range consumers {
			select {
			case <-c.StopChan:
			case <-time.After(waitLimit):
				t.Errorf("consumer#%d did not stop within %s", i, waitLimit)
			}
		}
	}
	defer stopConsumers()

	// --- producers: one go-nsq Producer per nsqd, replaced after an error
	// (see pubSlot)
	slots := make([]*pubSlot, 3)
	for i, n := range nodes {
		slots[i] = &pubSlot{addr: n.tcpAddr}
		slots[i].get(t)
	}
	defer func() {
		for _, s := range slots {
			s.stop()
		}
	}()

	var (
		okd        = make([]atomic.Bool, totalMsgs) // the publisher got OK
		okCount    atomic.Int64
		pubErrors  atomic.Int64 // failed publish attempts (retried elsewhere)
		pubGiveUps atomic.Int64 // messages never OK'd
		errMu      sync.Mutex
		errSample  = map[string]int{} // publish error text -> count
		restarted  = make(chan struct{})
		ctx        = t.Context()
	)
	gate := int(gateShare * totalMsgs)
	// publish sends msgs (indices) starting with the worker's own nsqd and
	// moving on to the next one on error, as an application would.
	publish := func(pref int, idx []int) {
		bodies := make([][]byte, len(idx))
		for k, i := range idx {
			bodies[k] = body(i)
		}
		for attempt := 0; ; attempt++ {
			slot := slots[(pref+attempt)%len(slots)]
			p := slot.get(t)
			var err error
			if p == nil {
				err = errors.New("no producer")
			} else if len(idx) == 1 {
				err = p.Publish(topicName, bodies[0])
			} else {
				err = p.MultiPublish(topicName, bodies)
			}
			if err == nil {
				for _, i := range idx {
					okd[i].Store(true)
				}
				okCount.Add(int64(len(idx)))
				return
			}
			pubErrors.Add(1)
			errMu.Lock()
			errSample[fmt.Sprintf("nsqd#%d: %v", (pref+attempt)%len(slots), err)]++
			errMu.Unlock()
			if p != nil {
				slot.replace(p)
			}
			if attempt >= 60 || ctx.Err() != nil {
				pubGiveUps.Add(int64(len(idx)))
				return
			}
			if attempt%len(slots) == len(slots)-1 {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pref := w % len(slots)
			var batch []int
			for i := w; i < totalMsgs; i += workers {
				if i >= gate && i-workers < gate { // first index past the gate
					if len(batch) > 0 {
						publish(pref, batch)
						batch = nil
					}
					select {
					case <-restarted:
					case <-ctx.Done():
						return
					}
				}
				if w < workers/2 {
					publish(pref, []int{i})
					continue
				}
				batch = append(batch, i)
				if len(batch) == mpubBatch {
					publish(pref, batch)
					batch = nil
				}
			}
			if len(batch) > 0 {
				publish(pref, batch)
			}
		}()
	}

	// --- mid-stream: SIGTERM nsqd#1, restart it on the same ports and data
	victim := nodes[1]
	eventually(t, deliveryLimit, "publishing reaches the stop point", func() (bool, string) {
		return okCount.Load() >= int64(stopShare*totalMsgs), fmt.Sprintf("%d OK", okCount.Load())
	})
	td, cs, err := victim.chanStats()
	t.Logf("SIGTERM nsqd#1 after %s: %d OK'd, %d delivered; nsqd#1 topic depth %d, channel depth %d, in flight %d (err %v)",
		time.Since(start).Round(time.Millisecond), okCount.Load(), received.Load(), td, cs.Depth, cs.InFlightCount, err)
	stopped := time.Now()
	victim.p.Stop(t, syscall.SIGTERM, waitLimit)
	t.Logf("nsqd#1 exited cleanly after %s", time.Since(stopped).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond) // down for a moment: publishers fail over
	victim.start(t, bins.NSQD)
	td, cs, err = victim.chanStats()
	t.Logf("nsqd#1 back up after %s of downtime: topic depth %d, channel depth %d (restored from %s; err %v)",
		time.Since(stopped).Round(time.Millisecond), td, cs.Depth, victim.dataDir, err)
	close(restarted)

	pubDone := make(chan struct{})
	go func() { wg.Wait(); close(pubDone) }()
	select {
	case <-pubDone:
	case <-time.After(deliveryLimit):
		t.Fatalf("publishers still running %s after the restart (%d OK)", deliveryLimit, okCount.Load())
	}
	t.Logf("publishing done after %s: %d OK'd, %d failed attempts, %d given up",
		time.Since(start).Round(time.Millisecond), okCount.Load(), pubErrors.Load(), pubGiveUps.Load())
	errMu.Lock()
	for e, c := range errSample {
		t.Logf("  publish error x%d: %s", c, e)
	}
	errMu.Unlock()

	// --- every OK'd message arrives
	missing := func() []int {
		var m []int
		for i := range totalMsgs {
			if okd[i].Load() && deliveries[i].Load() == 0 {
				m = append(m, i)
			}
		}
		return m
	}
	deadline := time.Now().Add(deliveryLimit)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// both consumers are connected to all 3 nsqd again (rediscovered the
	// restarted one through lookupd) and every channel is drained
	waitLookups("end")
	for _, n := range nodes {
		eventually(t, waitLimit, fmt.Sprintf("nsqd#%d channel drained with 2 consumers", n.idx), func() (bool, string) {
			td, cs, err := n.chanStats()
			return err == nil && td == 0 && cs.Depth == 0 && cs.InFlightCount == 0 && cs.DeferredCount == 0 && len(cs.Clients) == 2,
				fmt.Sprintf("topic depth %d, channel %+v clients %d, err %v", td, cs, len(cs.Clients), err)
		})
		_, cs, _ := n.chanStats()
		t.Logf("nsqd#%d channel %s: message_count %d (since its last start), requeued %d, timed out %d",
			n.idx, channelName, cs.MessageCount, cs.RequeueCount, cs.TimeoutCount)
	}
	elapsed := time.Since(start)
	stopConsumers()

	// --- the tally
	var unique, dups, extra int
	var dupIdx []int
	for i := range totalMsgs {
		c := int(deliveries[i].Load())
		if c > 0 {
			unique++
			if !okd[i].Load() {
				extra++ // reached nsqd, but its OK was lost
			}
		}
		if c > 1 {
			dups += c - 1
			if len(dupIdx) < 20 {
				dupIdx = append(dupIdx, i)
			}
		}
	}
	lost := missing()
	t.Logf("RESULT: %d messages, %d OK'd, %d publish attempts failed (retried on another nsqd), %d given up",
		totalMsgs, okCount.Load(), pubErrors.Load(), pubGiveUps.Load())
	t.Logf("RESULT: %d deliveries, %d distinct messages, %d duplicates (first: %v), %d delivered without an OK, %d bad bodies, %d lost; %s",
		received.Load(), unique, dups, dupIdx, extra, badBodies.Load(), len(lost), elapsed.Round(time.Millisecond))
	if len(lost) > 0 {
		show := lost
		if len(show) > 20 {
			show = show[:20]
		}
		t.Errorf("%d OK'd messages never delivered (first: %v)", len(lost), show)
	}
	if n := pubGiveUps.Load(); n > 0 {
		t.Errorf("%d messages could not be published on any nsqd", n)
	}
	if n := badBodies.Load(); n > 0 {
		t.Errorf("%d deliveries with a corrupted body", n)
	}

	// --- clean shutdown of everything we started
	for _, s := range slots {
		s.stop()
	}
	for _, n := range nodes {
		n.p.Stop(t, syscall.SIGTERM, waitLimit)
	}
	for _, l := range lookups {
		l.p.Stop(t, syscall.SIGTERM, waitLimit)
	}
}
