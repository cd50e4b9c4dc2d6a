// Package crash kills nsqd with SIGKILL while publishers and a consumer are
// busy, restarts it on the same data path, and checks at the end that every
// message that got OK is delivered at least once on every channel, and that
// go-diskqueue never had to set a segment aside as *.bad.
//
// Cycles: 20 by default, NSQ_CRASH_CYCLES overrides (make soak: 1000).
// NSQ_CRASH_NSQD_BIN runs another nsqd binary instead of building this
// module's; NSQ_CRASH_DEBUG=1 logs more (duplicates per cycle, recoveries).
// Findings and the fix: docs/robustness-crash.md.
package crash

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/test/internal/daemons"
)

const (
	topicName   = "crash"
	liveChannel = "live" // consumed (with a processing delay) during the cycles
	endChannel  = "end"  // consumed only after the last cycle
	publishers  = 4
	// small segments so that every run rolls files, deletes consumed ones
	// and exercises the reader catching up with the writer at a file end
	maxBytesPerFile = 64 << 10
)

func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }

// nsqdBin is built from this module; NSQ_CRASH_NSQD_BIN runs the test
// against another binary (e.g. one built before the fix, for evidence).
func nsqdBin(t *testing.T) string {
	if bin := os.Getenv("NSQ_CRASH_NSQD_BIN"); bin != "" {
		return bin
	}
	return daemons.Build(t, false).NSQD
}

// ---------------------------------------------------------------------------
// the test

func TestCrash(t *testing.T) {
	cycles := 20
	if s := os.Getenv("NSQ_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("NSQ_CRASH_CYCLES=%q: want a positive integer", s)
		}
		cycles = n
	}
	dataPath := t.TempDir()
	led := newLedger()
	var ev evidence
	start := time.Now()

	for cycle := 0; cycle < cycles; cycle++ {
		p := startNSQD(t, dataPath, 1)
		if cycle == 0 {
			// topic and both channels exist before the first message, and
			// are in nsqd.dat before the first kill
			mustPost(t, p.httpAddr, "/topic/create?topic="+topicName)
			mustPost(t, p.httpAddr, "/channel/create?topic="+topicName+"&channel="+liveChannel)
			mustPost(t, p.httpAddr, "/channel/create?topic="+topicName+"&channel="+endChannel)
			waitMetadata(t, dataPath)
		}

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < publishers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				publish(p.tcpAddr, cycle, i, led, stop)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			consume(p.tcpAddr, liveChannel, 20*time.Millisecond, led.live, stop)
		}()

		delay := time.Duration(50+rand.IntN(451)) * time.Millisecond
		time.Sleep(delay)
		p.Kill(t)
		close(stop)
		wg.Wait()

		ev.scanLog(p.Output())
		ev.snapshot(t, cycle, dataPath)
		if ev.noteBad(dataPath, fmt.Sprintf("after cycle %d", cycle)) {
			t.Logf("cycle %d: new *.bad file; warnings and errors of this run:\n%s", cycle, problems(p.Output()))
		}
		if testing.Verbose() && (cycle < 20 || cycle%50 == 0) {
			t.Logf("cycle %d: killed after %v, %d messages OK so far", cycle, delay, led.okCount())
		}
	}

	// last start: drain both channels, then a graceful stop. With
	// --sync-every=1 the topic pump (one read and two writes, each synced,
	// per message) falls behind the publishers during the cycles; the drain
	// itself is not under test, so it syncs at go-diskqueue's default pace.
	p := startNSQD(t, dataPath, 2500)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, ch := range []string{liveChannel, endChannel} {
		set := led.live
		if ch == endChannel {
			set = led.end
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			consume(p.tcpAddr, ch, 0, set, stop)
		}()
	}
	waitDrained(t, p.httpAddr, led)
	close(stop)
	wg.Wait()
	p.Stop(t, syscall.SIGTERM, 30*time.Second)
	ev.scanLog(p.Output())
	ev.noteBad(dataPath, "at the end")

	// verdict
	res := led.check()
	t.Logf("RESULT cycles=%d messages_ok=%d lost_live=%d lost_end=%d dup_live=%d dup_end=%d bad_files=%d elapsed=%v",
		cycles, res.ok, len(res.lostLive), len(res.lostEnd), res.dupLive, res.dupEnd, len(ev.badSeen), time.Since(start).Round(time.Millisecond))
	t.Logf("evidence: %s", ev.summary())
	if os.Getenv("NSQ_CRASH_DEBUG") != "" {
		per := map[int]int{}
		for b, c := range led.live.count {
			if c > 1 {
				per[led.ok[b]] += c - 1
			}
		}
		t.Logf("live dups by publish cycle: %v", per)
		for _, l := range strings.Split(ev.rawLog, "\n") {
			if strings.Contains(l, "crash:live) recovered") {
				t.Logf("%s", l)
			}
		}
	}
	if len(res.lostLive)+len(res.lostEnd) > 0 {
		t.Errorf("lost messages: %d on %q:%s; %d on %q:%s",
			len(res.lostLive), liveChannel, led.describe(res.lostLive, 10),
			len(res.lostEnd), endChannel, led.describe(res.lostEnd, 10))
	}
	if len(ev.badSeen) > 0 {
		t.Errorf("*.bad files in the data path: %v", ev.badSeen)
	}
	if res.ok == 0 {
		t.Errorf("no message was acknowledged: the test did not exercise anything")
	}
}

// ---------------------------------------------------------------------------
// bookkeeping

// ledger records what was acknowledged to publishers and what each channel
// delivered.
type ledger struct {
	mu   sync.Mutex
	ok   map[string]int // body -> cycle it was published in
	live *deliveries
	end  *deliveries
}

type deliveries struct {
	mu    sync.Mutex
	count map[string]int
	total int
}

func (d *deliveries) add(body string) {
	d.mu.Lock()
	d.count[body]++
	d.total++
	d.mu.Unlock()
}

func (d *deliveries) n() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}

func newLedger() *ledger {
	return &ledger{
		ok:   make(map[string]int),
		live: &deliveries{count: make(map[string]int)},
		end:  &deliveries{count: make(map[string]int)},
	}
}

func (l *ledger) acked(cycle int, bodies ...string) {
	l.mu.Lock()
	for _, b := range bodies {
		l.ok[b] = cycle
	}
	l.mu.Unlock()
}

func (l *ledger) okCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ok)
}

type result struct {
	ok                int
	lostLive, lostEnd []string
	dupLive, dupEnd   int
}

func (l *ledger) check() result {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live.mu.Lock()
	defer l.live.mu.Unlock()
	l.end.mu.Lock()
	defer l.end.mu.Unlock()
	r := result{ok: len(l.ok)}
	for b := range l.ok {
		if l.live.count[b] == 0 {
			r.lostLive = append(r.lostLive, b)
		}
		if l.end.count[b] == 0 {
			r.lostEnd = append(r.lostEnd, b)
		}
	}
	for _, c := range l.live.count {
		r.dupLive += max(c-1, 0)
	}
	for _, c := range l.end.count {
		r.dupEnd += max(c-1, 0)
	}
	sort.Strings(r.lostLive)
	sort.Strings(r.lostEnd)
	return r
}

func (l *ledger) describe(bodies []string, limit int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	for i, b := range bodies {
		if i == limit {
			fmt.Fprintf(&sb, " ... (%d more)", len(bodies)-limit)
			break
		}
		fmt.Fprintf(&sb, " %s(cycle %d)", b[:strings.IndexByte(b, '/')], l.ok[b])
	}
	return sb.String()
}

// ---------------------------------------------------------------------------
// evidence: what the data path looks like right after each SIGKILL

type evidence struct {
	kills          int
	staleMeta      int // queue whose meta write position is behind its file
	staleBytes     int64
	staleRecords   int
	noMeta         int // segment files without a meta file
	tornTails      int // partial record at the end of a segment
	readBehind     int // meta read position behind what the log says was read
	logLines       map[string]int
	logExamples    []string
	rawLog         string
	badSeen        map[string]string // *.bad file -> when first seen
	staleExamples  []string
	tornExamples   []string
	maxStaleRecord int
}

var logKinds = []struct {
	name string
	re   *regexp.Regexp
}{
	{"skip-to-new-file", regexp.MustCompile(`metadata writePos \d+ < file size`)},
	{"negative-depth", regexp.MustCompile(`negative depth at tail`)},
	{"positive-depth", regexp.MustCompile(`positive depth at tail`)},
	{"read-error", regexp.MustCompile(`DISKQUEUE\(\S+\) reading at`)},
	{"bad-file", regexp.MustCompile(`saving bad file`)},
	{"recovered", regexp.MustCompile(`DISKQUEUE\(\S+\) recover`)},
	{"spurious-bad-removed", regexp.MustCompile(`DISKQUEUE\(\S+\) removed \S+\.bad`)},
	{"pinning-off", regexp.MustCompile(`cannot keep unfinished records|recovery failed`)},
}

func (e *evidence) scanLog(log string) {
	if os.Getenv("NSQ_CRASH_DEBUG") != "" {
		e.rawLog += log
	}
	if e.logLines == nil {
		e.logLines = make(map[string]int)
	}
	for _, line := range strings.Split(log, "\n") {
		for _, k := range logKinds {
			if k.re.MatchString(line) {
				e.logLines[k.name]++
				if k.name != "skip-to-new-file" && len(e.logExamples) < 10 {
					e.logExamples = append(e.logExamples, line)
				}
			}
		}
	}
}

// snapshot compares every queue's meta file with its segment files.
func (e *evidence) snapshot(t *testing.T, cycle int, dataPath string) {
	e.kills++
	metas, _ := filepath.Glob(filepath.Join(dataPath, "*.diskqueue.meta.dat"))
	seen := map[string]bool{}
	for _, mf := range metas {
		name := strings.TrimSuffix(filepath.Base(mf), ".diskqueue.meta.dat")
		seen[name] = true
		b, err := os.ReadFile(mf)
		if err != nil {
			continue
		}
		var depth, rf, rp, wf, wp int64
		if _, err := fmt.Sscanf(string(b), "%d\n%d,%d\n%d,%d\n", &depth, &rf, &rp, &wf, &wp); err != nil {
			t.Logf("cycle %d: %s: unreadable meta %q", cycle, name, b)
			continue
		}
		seg := filepath.Join(dataPath, fmt.Sprintf("%s.diskqueue.%06d.dat", name, wf))
		data, err := os.ReadFile(seg)
		if err != nil {
			continue
		}
		if int64(len(data)) > wp {
			n, torn := countRecords(data[wp:])
			e.staleMeta++
			e.staleBytes += int64(len(data)) - wp
			e.staleRecords += n
			e.maxStaleRecord = max(e.maxStaleRecord, n)
			if len(e.staleExamples) < 5 {
				e.staleExamples = append(e.staleExamples, fmt.Sprintf(
					"cycle %d %s: meta depth=%d read=%d,%d write=%d,%d; segment %06d is %d bytes: %d complete records after writePos",
					cycle, name, depth, rf, rp, wf, wp, wf, len(data), n))
			}
			if torn > 0 {
				e.tornTails++
				if len(e.tornExamples) < 5 {
					e.tornExamples = append(e.tornExamples, fmt.Sprintf("cycle %d %s: %d-byte partial record at the end of segment %06d", cycle, name, torn, wf))
				}
			}
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dataPath, "*.diskqueue.[0-9]*.dat"))
	for _, s := range segs {
		base := filepath.Base(s)
		name := base[:strings.Index(base, ".diskqueue.")]
		if !seen[name] {
			e.noMeta++
			seen[name] = true
		}
	}
}

// countRecords counts complete [int32 length][record] frames and reports the
// size of an incomplete one at the end.
func countRecords(b []byte) (n, torn int) {
	for len(b) > 0 {
		if len(b) < 4 {
			return n, len(b)
		}
		l := int(binary.BigEndian.Uint32(b))
		if l <= 0 || 4+l > len(b) {
			return n, len(b)
		}
		b = b[4+l:]
		n++
	}
	return n, 0
}

func (e *evidence) summary() string {
	var kinds []string
	for _, k := range logKinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k.name, e.logLines[k.name]))
	}
	s := fmt.Sprintf("kills=%d stale_meta_queues=%d (records beyond meta writePos: %d, bytes %d, max in one queue %d) torn_tails=%d segments_without_meta=%d; nsqd log: %s",
		e.kills, e.staleMeta, e.staleRecords, e.staleBytes, e.maxStaleRecord, e.tornTails, e.noMeta, strings.Join(kinds, " "))
	for _, x := range e.staleExamples {
		s += "\n  " + x
	}
	for _, x := range e.tornExamples {
		s += "\n  " + x
	}
	for _, x := range e.logExamples {
		s += "\n  log: " + x
	}
	return s
}

// noteBad records the *.bad files of the data path; true if one is new.
func (e *evidence) noteBad(dataPath, when string) bool {
	m, _ := filepath.Glob(filepath.Join(dataPath, "*.bad"))
	added := false
	for _, f := range m {
		if e.badSeen == nil {
			e.badSeen = make(map[string]string)
		}
		if _, ok := e.badSeen[filepath.Base(f)]; !ok {
			e.badSeen[filepath.Base(f)] = when
			added = true
		}
	}
	return added
}

// problems returns the WARNING, ERROR and recovery lines of an nsqd log.
func problems(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "WARNING") || strings.Contains(l, "ERROR") || strings.Contains(l, ".bad") {
			out = append(out, "    "+l)
		}
	}
	if len(out) > 60 {
		out = append(out[:60], fmt.Sprintf("    ... %d more", len(out)-60))
	}
	return strings.Join(out, "\n")
}

// ---------------------------------------------------------------------------
// process handling

type proc struct {
	*daemons.Proc
	tcpAddr, httpAddr string
}

func startNSQD(t *testing.T, dataPath string, syncEvery int) *proc {
	t.Helper()
	args := []string{
		"--mem-queue-size=0", "--sync-every=" + strconv.Itoa(syncEvery),
		"--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0",
		"--data-path=" + dataPath,
		"--max-bytes-per-file=" + strconv.Itoa(maxBytesPerFile),
		"--msg-timeout=5s",
	}
	// quiet: a new process every cycle; the test quotes the logs it needs
	p := &proc{Proc: daemons.Start(t, daemons.Cmd{Name: "nsqd", Bin: nsqdBin(t), Args: args, Quiet: true})}
	addrs := p.WaitListening(t, 10*time.Second, "TCP", "HTTP")
	p.tcpAddr, p.httpAddr = addrs[0], addrs[1]
	// HTTP serving starts in Main; wait until it answers
	p.WaitPing(t, p.httpAddr, 2*time.Second)
	return p
}

func mustPost(t *testing.T, addr, path string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
	}
}

// waitMetadata waits until nsqd.dat lists both channels, so a kill cannot
// take them away.
func waitMetadata(t *testing.T, dataPath string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		b, _ := os.ReadFile(filepath.Join(dataPath, "nsqd.dat"))
		if bytes.Contains(b, []byte(`"`+liveChannel+`"`)) && bytes.Contains(b, []byte(`"`+endChannel+`"`)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nsqd.dat does not list the channels")
}

type statsDoc struct {
	Topics []struct {
		TopicName string `json:"topic_name"`
		Depth     int64  `json:"depth"`
		Channels  []struct {
			ChannelName   string `json:"channel_name"`
			Depth         int64  `json:"depth"`
			InFlightCount int    `json:"in_flight_count"`
			DeferredCount int    `json:"deferred_count"`
		} `json:"channels"`
	} `json:"topics"`
}

// waitDrained waits until the topic and both channels are empty with nothing
// in flight, and no delivery happened for a while. It gives up after 60s
// without any progress.
func waitDrained(t *testing.T, httpAddr string, led *ledger) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	stable := 0
	last := -1
	var lastDoc string
	for time.Now().Before(deadline) {
		if n := led.live.n() + led.end.n(); n != last {
			deadline = time.Now().Add(60 * time.Second)
		}
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get("http://" + httpAddr + "/stats?format=json&topic=" + topicName)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lastDoc = string(body)
		var d statsDoc
		if json.Unmarshal(body, &d) != nil || len(d.Topics) != 1 {
			continue
		}
		empty := d.Topics[0].Depth == 0 && len(d.Topics[0].Channels) == 2
		for _, c := range d.Topics[0].Channels {
			empty = empty && c.Depth == 0 && c.InFlightCount == 0 && c.DeferredCount == 0
		}
		n := led.live.n() + led.end.n()
		if empty && n == last {
			stable++
			if stable >= 3 {
				return
			}
		} else {
			stable = 0
		}
		last = n
	}
	t.Fatalf("queues not drained, no delivery for 60s: %s", lastDoc)
}

// ---------------------------------------------------------------------------
// raw V2 client

var errFrame = errors.New("error frame")

type conn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(addr string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte("  V2")); err != nil {
		c.Close()
		return nil, err
	}
	return &conn{c: c, r: bufio.NewReader(c)}, nil
}

// frame reads one frame: type 0 response, 1 error, 2 message.
func (c *conn) frame() (int32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := int32(binary.BigEndian.Uint32(hdr[:4]))
	if size < 4 || size > 16<<20 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	data := make([]byte, size-4)
	if _, err := io.ReadFull(c.r, data); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, nil
}

// response waits for the answer to a command, skipping heartbeats.
func (c *conn) response() error {
	for {
		ft, data, err := c.frame()
		if err != nil {
			return err
		}
		switch {
		case ft == 0 && string(data) == "_heartbeat_":
			if _, err := c.c.Write([]byte("NOP\n")); err != nil {
				return err
			}
		case ft == 0 && string(data) == "OK":
			return nil
		case ft == 1:
			return fmt.Errorf("%w: %s", errFrame, data)
		default:
			return fmt.Errorf("unexpected frame %d %q", ft, data)
		}
	}
}

// publish sends PUB and MPUB commands with unique bodies until stop or a
// connection error, and records every body that got OK.
func publish(addr string, cycle, id int, led *ledger, stop <-chan struct{}) {
	c, err := dial(addr)
	if err != nil {
		return
	}
	defer c.c.Close()
	go func() {
		<-stop
		c.c.Close()
	}()
	seq := 0
	filler := strings.Repeat("x", 200)
	body := func() string {
		seq++
		// bodies of varying length; the part before '/' names the message
		return fmt.Sprintf("c%d-p%d-%d/%s", cycle, id, seq, filler[:rand.IntN(len(filler))])
	}
	var buf bytes.Buffer
	for {
		select {
		case <-stop:
			return
		default:
		}
		buf.Reset()
		var bodies []string
		if rand.IntN(3) == 0 {
			n := 2 + rand.IntN(20)
			size := 4
			for i := 0; i < n; i++ {
				bodies = append(bodies, body())
				size += 4 + len(bodies[i])
			}
			fmt.Fprintf(&buf, "MPUB %s\n", topicName)
			binary.Write(&buf, binary.BigEndian, int32(size))
			binary.Write(&buf, binary.BigEndian, int32(n))
			for _, b := range bodies {
				binary.Write(&buf, binary.BigEndian, int32(len(b)))
				buf.WriteString(b)
			}
		} else {
			bodies = []string{body()}
			fmt.Fprintf(&buf, "PUB %s\n", topicName)
			binary.Write(&buf, binary.BigEndian, int32(len(bodies[0])))
			buf.WriteString(bodies[0])
		}
		if _, err := c.c.Write(buf.Bytes()); err != nil {
			return
		}
		if err := c.response(); err != nil {
			return
		}
		led.acked(cycle, bodies...)
	}
}

// consume subscribes to channel and finishes every message after delay,
// recording it as delivered only once its FIN is written: a message that is
// received but not finished when nsqd dies must come again.
func consume(addr, channel string, delay time.Duration, set *deliveries, stop <-chan struct{}) {
	c, err := dial(addr)
	if err != nil {
		return
	}
	defer c.c.Close()
	go func() {
		<-stop
		c.c.Close()
	}()
	if _, err := fmt.Fprintf(c.c, "SUB %s %s\n", topicName, channel); err != nil {
		return
	}
	if c.response() != nil {
		return
	}
	if _, err := c.c.Write([]byte("RDY 50\n")); err != nil {
		return
	}
	type pending struct {
		id   string
		body string
		at   time.Time
	}
	queue := make(chan pending, 1024)
	var wmu sync.Mutex
	finDone := make(chan struct{})
	go func() {
		defer close(finDone)
		for m := range queue {
			if d := time.Until(m.at.Add(delay)); d > 0 {
				time.Sleep(d)
			}
			wmu.Lock()
			_, err := fmt.Fprintf(c.c, "FIN %s\n", m.id)
			wmu.Unlock()
			if err != nil {
				for range queue {
				}
				return
			}
			set.add(m.body)
		}
	}()
	defer func() {
		close(queue)
		<-finDone
	}()
	for {
		ft, data, err := c.frame()
		if err != nil {
			return
		}
		switch ft {
		case 0:
			if string(data) == "_heartbeat_" {
				wmu.Lock()
				_, err := c.c.Write([]byte("NOP\n"))
				wmu.Unlock()
				if err != nil {
					return
				}
			}
		case 2:
			if len(data) < 26 {
				return
			}
			queue <- pending{id: string(data[10:26]), body: string(data[26:]), at: time.Now()}
		default:
			return
		}
	}
}
