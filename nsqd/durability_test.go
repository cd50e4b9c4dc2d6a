package nsqd_test

// Durability tests: graceful Exit flushes memory, in-flight and deferred
// messages; a new NSQD on the same data path gets them all back, with the
// metadata (topics, channels, paused flags). Deferred messages keep their
// deliver-at time on disk (our policy Q-15). Spec rows: D-SHUT-01, D-SHUT-02,
// D-SHUT-04, D-META-01, D-META-03, D-LOCK-01, D-EPH-01, D-EPH-02, D-TCP-47,
// D-DEF-02, D-QUEUE-01, Q-15. Uses a raw V2 client so that messages can stay
// in flight (go-nsq would wait forever for un-answered messages on close).

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ournsq/nsq/nsqd"
)

// ---------------------------------------------------------------------------
// raw V2 client

type durMsg struct {
	id       string
	attempts uint16
	ts       int64
	body     string
	at       time.Time
}

type durFrame struct {
	typ  int32
	data []byte
}

type durConn struct {
	c      net.Conn
	wmu    sync.Mutex
	frames chan durFrame // response (except heartbeats) and error frames
	msgs   chan durMsg
	done   chan struct{} // closed when the read loop ends
	err    error         // why the read loop ended; read after done
}

func durDial(t testing.TB, addr string) *durConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	d := &durConn{
		c:      c,
		frames: make(chan durFrame, 100),
		msgs:   make(chan durMsg, 10000),
		done:   make(chan struct{}),
	}
	if err := d.write([]byte("  V2")); err != nil {
		t.Fatalf("write magic: %v", err)
	}
	go d.readLoop()
	t.Cleanup(func() {
		c.Close()
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
		}
	})
	return d
}

func (d *durConn) write(b []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := d.c.Write(b)
	return err
}

func (d *durConn) send(format string, args ...interface{}) error {
	return d.write([]byte(fmt.Sprintf(format, args...)))
}

func (d *durConn) readLoop() {
	defer close(d.done)
	r := bufio.NewReader(d.c)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			d.err = err
			return
		}
		size := binary.BigEndian.Uint32(hdr[:4])
		typ := int32(binary.BigEndian.Uint32(hdr[4:]))
		if size < 4 || size > 64<<20 {
			d.err = fmt.Errorf("bad frame size %d", size)
			return
		}
		data := make([]byte, size-4)
		if _, err := io.ReadFull(r, data); err != nil {
			d.err = err
			return
		}
		at := time.Now()
		switch typ {
		case 0:
			if string(data) == "_heartbeat_" {
				d.send("NOP\n")
				continue
			}
			d.frames <- durFrame{typ, data}
		case 1:
			d.frames <- durFrame{typ, data}
		case 2:
			if len(data) < 26 {
				d.err = fmt.Errorf("short message frame (%d bytes)", len(data))
				return
			}
			d.msgs <- durMsg{
				ts:       int64(binary.BigEndian.Uint64(data[:8])),
				attempts: binary.BigEndian.Uint16(data[8:10]),
				id:       string(data[10:26]),
				body:     string(data[26:]),
				at:       at,
			}
		default:
			d.err = fmt.Errorf("unknown frame type %d", typ)
			return
		}
	}
}

// expectOK waits for the next non-heartbeat frame and fails unless it is OK.
func (d *durConn) expectOK(t testing.TB, what string) {
	t.Helper()
	select {
	case f := <-d.frames:
		if f.typ != 0 || string(f.data) != "OK" {
			t.Fatalf("%s: got frame type %d %q, want response OK", what, f.typ, f.data)
		}
	case <-d.done:
		t.Fatalf("%s: connection closed (%v)", what, d.err)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no response within 5s", what)
	}
}

func (d *durConn) sub(t testing.TB, topic, channel string, rdy int) {
	t.Helper()
	if err := d.send("SUB %s %s\n", topic, channel); err != nil {
		t.Fatalf("SUB: %v", err)
	}
	d.expectOK(t, "SUB "+topic+" "+channel)
	if err := d.send("RDY %d\n", rdy); err != nil {
		t.Fatalf("RDY: %v", err)
	}
}

func (d *durConn) recv(t testing.TB, n int, timeout time.Duration) []durMsg {
	t.Helper()
	var out []durMsg
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m := <-d.msgs:
			out = append(out, m)
		case f := <-d.frames:
			t.Fatalf("unexpected frame type %d %q while waiting for messages", f.typ, f.data)
		case <-d.done:
			t.Fatalf("connection closed after %d of %d messages (%v)", len(out), n, d.err)
		case <-deadline:
			t.Fatalf("got %d of %d messages within %v", len(out), n, timeout)
		}
	}
	return out
}

// durLog records every message a connection receives (and FINs them).
type durLog struct {
	mu   sync.Mutex
	msgs []durMsg
}

func (l *durLog) byBody() map[string][]durMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string][]durMsg)
	for _, x := range l.msgs {
		m[x.body] = append(m[x.body], x)
	}
	return m
}

// autoFin FINs every message received from now on and records it in a log.
func (d *durConn) autoFin() *durLog {
	l := &durLog{}
	go func() {
		for {
			select {
			case m := <-d.msgs:
				d.send("FIN %s\n", m.id)
				l.mu.Lock()
				l.msgs = append(l.msgs, m)
				l.mu.Unlock()
			case <-d.done:
				return
			}
		}
	}()
	return l
}

// durExpect describes what one body must look like after restart.
type durExpect struct {
	attempts  uint16
	notBefore time.Time // zero: no constraint
	dupsOK    bool      // was in flight at shutdown: a duplicate is tolerated (reported)
}

// durCheck waits until every expected body arrived (or timeout) and checks
// counts, attempts and deliver-at times.
func durCheck(t testing.TB, what string, l *durLog, want map[string]durExpect, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := l.byBody()
		n := 0
		for b := range want {
			if len(got[b]) > 0 {
				n++
			}
		}
		if n == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let stray duplicates show up
	got := l.byBody()
	var missing []string
	for b, w := range want {
		ms := got[b]
		if len(ms) == 0 {
			missing = append(missing, b)
			continue
		}
		if len(ms) > 1 {
			if w.dupsOK {
				t.Logf("%s: %q (in flight at shutdown) delivered %d times after restart", what, b, len(ms))
			} else {
				t.Errorf("%s: %q delivered %d times after restart, want once", what, b, len(ms))
			}
		}
		m := ms[0]
		if m.attempts != w.attempts {
			t.Errorf("%s: %q attempts = %d, want %d", what, b, m.attempts, w.attempts)
		}
		if !w.notBefore.IsZero() && m.at.Before(w.notBefore) {
			t.Errorf("%s: deferred %q delivered %v before its deliver-at time (Q-15)", what, b, w.notBefore.Sub(m.at))
		}
		if !w.notBefore.IsZero() && m.at.After(w.notBefore.Add(clLateSlack)) {
			t.Errorf("%s: deferred %q delivered %v after its deliver-at time", what, b, m.at.Sub(w.notBefore))
		}
	}
	for b, ms := range got {
		if _, ok := want[b]; !ok {
			t.Errorf("%s: unexpected body %q delivered %d times", what, b, len(ms))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s: %d of %d messages not delivered after restart within %v: %v", what, len(missing), len(want), timeout, clHead(missing))
	}
}

type durMeta struct {
	Topics []struct {
		Name     string `json:"name"`
		Paused   bool   `json:"paused"`
		Channels []struct {
			Name   string `json:"name"`
			Paused bool   `json:"paused"`
		} `json:"channels"`
	} `json:"topics"`
	Version string `json:"version"`
}

// ---------------------------------------------------------------------------
// 4. in-process restart

func TestDurabilityRestartInProcess(t *testing.T) {
	dataPath := t.TempDir()
	node := clStart(t, clOpts(t, dataPath))
	addr := node.addr()
	const (
		topicName  = "dur"
		pausedName = "dur_paused"
		ephName    = "dur_tmp#ephemeral"
		deferBy    = 3 * time.Second
	)

	topic := node.n.GetTopic(topicName)
	ch := topic.GetChannel("c")
	pch := topic.GetChannel("pc")
	topic.GetChannel("e#ephemeral")
	ptopic := node.n.GetTopic(pausedName)
	ptopic.GetChannel("c")
	node.n.GetTopic(ephName).GetChannel("x#ephemeral")
	if err := pch.Pause(); err != nil {
		t.Fatalf("channel Pause: %v", err)
	}
	if err := ptopic.Pause(); err != nil {
		t.Fatalf("topic Pause: %v", err)
	}

	p := clProducer(t, addr)
	var mBodies [][]byte
	for i := 0; i < 30; i++ {
		mBodies = append(mBodies, []byte(fmt.Sprintf("m-%02d", i)))
	}
	if err := p.MultiPublish(topicName, mBodies); err != nil {
		t.Fatalf("MPUB: %v", err)
	}
	for i := 0; i < 4; i++ {
		if err := p.Publish(pausedName, []byte(fmt.Sprintf("p-%d", i))); err != nil {
			t.Fatalf("PUB: %v", err)
		}
	}
	if err := p.Publish(ephName, []byte("e-0")); err != nil {
		t.Fatalf("PUB ephemeral: %v", err)
	}

	// 5 in flight on dur/c, then 2 of them REQ'd with a delay
	rc := durDial(t, addr)
	rc.sub(t, topicName, "c", 5)
	inflight := rc.recv(t, 5, 5*time.Second)
	if err := rc.send("RDY 0\n"); err != nil {
		t.Fatalf("RDY 0: %v", err)
	}
	for _, m := range inflight {
		if m.attempts != 1 {
			t.Errorf("first delivery of %q has attempts %d, want 1", m.body, m.attempts)
		}
	}
	reqAt := time.Now()
	for _, m := range inflight[:2] {
		if err := rc.send("REQ %s %d\n", m.id, deferBy.Milliseconds()); err != nil {
			t.Fatalf("REQ: %v", err)
		}
	}
	reqDue := reqAt.Add(deferBy)
	dpubDue := map[string]time.Time{}
	for i := 0; i < 3; i++ {
		b := fmt.Sprintf("d-%d", i)
		at := time.Now()
		if err := p.DeferredPublish(topicName, deferBy, []byte(b)); err != nil {
			t.Fatalf("DPUB: %v", err)
		}
		dpubDue[b] = at.Add(deferBy)
	}

	clEventually(t, 5*time.Second, func() bool {
		return ch.Depth() == 25 && ch.InFlightCount() == 3 && ch.DeferredCount() == 5 &&
			pch.Depth() == 30 && pch.DeferredCount() == 3 && ptopic.Depth() == 4
	}, "state before shutdown: c depth %d/25 in-flight %d/3 deferred %d/5; pc depth %d/30 deferred %d/3; paused topic depth %d/4",
		ch.Depth(), ch.InFlightCount(), ch.DeferredCount(), pch.Depth(), pch.DeferredCount(), ptopic.Depth())
	p.Stop()

	exitStart := time.Now()
	node.exit()
	t.Logf("Exit took %v", time.Since(exitStart))

	// D-SHUT-04: the server closed the consumer connection
	select {
	case <-rc.done:
	case <-time.After(5 * time.Second):
		t.Errorf("consumer connection still open 5s after Exit (D-SHUT-04)")
	}

	// D-META-01
	raw, err := os.ReadFile(filepath.Join(dataPath, "nsqd.dat"))
	if err != nil {
		t.Errorf("nsqd.dat after Exit: %v", err)
	} else {
		var meta durMeta
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Errorf("nsqd.dat is not JSON: %v: %q", err, raw)
		}
		if meta.Version != "1.3.0" {
			t.Errorf("nsqd.dat version = %q, want 1.3.0", meta.Version)
		}
		if strings.HasSuffix(string(raw), "\n") {
			t.Errorf("nsqd.dat ends with a newline (D-META-01: JSON without trailing newline)")
		}
		found := map[string]bool{}
		for _, tp := range meta.Topics {
			found[tp.Name] = true
			if strings.HasSuffix(tp.Name, "#ephemeral") {
				t.Errorf("nsqd.dat lists ephemeral topic %q", tp.Name)
			}
			if tp.Name == pausedName && !tp.Paused {
				t.Errorf("nsqd.dat: topic %q not paused", tp.Name)
			}
			if tp.Name == topicName && tp.Paused {
				t.Errorf("nsqd.dat: topic %q paused", tp.Name)
			}
			for _, c := range tp.Channels {
				found[tp.Name+"/"+c.Name] = true
				if strings.HasSuffix(c.Name, "#ephemeral") {
					t.Errorf("nsqd.dat lists ephemeral channel %s/%s", tp.Name, c.Name)
				}
				if tp.Name == topicName && c.Name == "pc" && !c.Paused {
					t.Errorf("nsqd.dat: channel %s/pc not paused", topicName)
				}
				if tp.Name == topicName && c.Name == "c" && c.Paused {
					t.Errorf("nsqd.dat: channel %s/c paused", topicName)
				}
			}
		}
		for _, k := range []string{topicName, topicName + "/c", topicName + "/pc", pausedName, pausedName + "/c"} {
			if !found[k] {
				t.Errorf("nsqd.dat lacks %s: %s", k, raw)
			}
		}
	}

	// restart on the same data path (also proves the lock was released)
	node2 := clStart(t, clOpts(t, dataPath))
	addr2 := node2.addr()
	var topic2, ptopic2 *nsqd.Topic
	clEventually(t, 5*time.Second, func() bool {
		var err1, err2 error
		topic2, err1 = node2.n.GetExistingTopic(topicName)
		ptopic2, err2 = node2.n.GetExistingTopic(pausedName)
		return err1 == nil && err2 == nil
	}, "topics %q and %q restored from metadata (D-META-03)", topicName, pausedName)
	if topic2 == nil || ptopic2 == nil {
		t.FailNow()
	}
	ch2, err := topic2.GetExistingChannel("c")
	if err != nil {
		t.Fatalf("channel %s/c not restored: %v", topicName, err)
	}
	pch2, err := topic2.GetExistingChannel("pc")
	if err != nil {
		t.Fatalf("channel %s/pc not restored: %v", topicName, err)
	}
	pc2, err := ptopic2.GetExistingChannel("c")
	if err != nil {
		t.Fatalf("channel %s/c not restored: %v", pausedName, err)
	}
	if _, err := node2.n.GetExistingTopic(ephName); err == nil {
		t.Errorf("ephemeral topic %q exists after restart (D-EPH-01)", ephName)
	}
	if _, err := topic2.GetExistingChannel("e#ephemeral"); err == nil {
		t.Errorf("ephemeral channel %s/e#ephemeral exists after restart (D-EPH-02)", topicName)
	}
	if topic2.IsPaused() || ch2.IsPaused() {
		t.Errorf("topic/channel %s/c paused after restart, was not", topicName)
	}
	if !ptopic2.IsPaused() {
		t.Errorf("topic %s not paused after restart", pausedName)
	}
	if !pch2.IsPaused() {
		t.Errorf("channel %s/pc not paused after restart", topicName)
	}
	if got := topic2.MessageCount(); got != 0 {
		t.Errorf("topic message_count after restart = %d, want 0 (D-META-03)", got)
	}
	if got := pc2.Depth(); got != 0 || pc2.IsPaused() {
		t.Errorf("channel %s/c after restart: depth %d paused %v, want 0 false (its topic is paused)", pausedName, got, pc2.IsPaused())
	}
	if got := ptopic2.Depth(); got != 4 {
		t.Errorf("paused topic depth after restart = %d, want 4", got)
	}
	if got := pch2.Depth(); got < 30 {
		t.Errorf("paused channel depth after restart = %d, want >= 30", got)
	}
	t.Logf("after restart: c depth %d (backend %d) deferred %d; pc depth %d (backend %d) deferred %d",
		ch2.Depth(), ch2.BackendDepth(), ch2.DeferredCount(), pch2.Depth(), pch2.BackendDepth(), pch2.DeferredCount())
	if left := time.Until(reqDue); left < 300*time.Millisecond {
		t.Fatalf("inconclusive: restart finished only %v before the deferred messages were due", left)
	}

	// consume everything
	c2 := durDial(t, addr2)
	c2.sub(t, topicName, "c", 100)
	logC := c2.autoFin()
	if err := pch2.UnPause(); err != nil {
		t.Fatalf("channel UnPause: %v", err)
	}
	c3 := durDial(t, addr2)
	c3.sub(t, topicName, "pc", 100)
	logPC := c3.autoFin()
	if err := ptopic2.UnPause(); err != nil {
		t.Fatalf("topic UnPause: %v", err)
	}
	c4 := durDial(t, addr2)
	c4.sub(t, pausedName, "c", 100)
	logP := c4.autoFin()

	wantC := map[string]durExpect{}
	wantPC := map[string]durExpect{}
	for _, b := range mBodies {
		wantC[string(b)] = durExpect{attempts: 1}
		wantPC[string(b)] = durExpect{attempts: 1}
	}
	for _, m := range inflight[:2] { // REQ'd with delay: attempts 1 so far
		wantC[m.body] = durExpect{attempts: 2, notBefore: reqDue}
	}
	for _, m := range inflight[2:] { // in flight at shutdown (D-SHUT-02)
		wantC[m.body] = durExpect{attempts: 2, dupsOK: true}
	}
	for b, due := range dpubDue {
		wantC[b] = durExpect{attempts: 1, notBefore: due}
		wantPC[b] = durExpect{attempts: 1, notBefore: due}
	}
	wantP := map[string]durExpect{}
	for i := 0; i < 4; i++ {
		wantP[fmt.Sprintf("p-%d", i)] = durExpect{attempts: 1}
	}
	wait := time.Until(reqDue) + 5*time.Second
	durCheck(t, topicName+"/c", logC, wantC, wait)
	durCheck(t, topicName+"/pc", logPC, wantPC, wait)
	durCheck(t, pausedName+"/c", logP, wantP, 5*time.Second)
}

// ---------------------------------------------------------------------------
// D-LOCK-01, D-CLI-21: one data path, one nsqd.

func TestDurabilityDataPathLock(t *testing.T) {
	dataPath := t.TempDir()
	first := clStart(t, clOpts(t, dataPath))

	n2, err := nsqd.New(clOpts(t, dataPath))
	if err == nil {
		n2.Exit()
		t.Fatalf("second nsqd.New on a locked data path succeeded (D-LOCK-01)")
	}
	t.Logf("second New: %v", err)
	if !strings.Contains(err.Error(), "lock") {
		t.Errorf("error %q does not mention the lock", err)
	}
	if !strings.Contains(err.Error(), "failed to lock data-path") || !strings.Contains(err.Error(), "in use by another instance of nsqd") {
		t.Errorf("error %q, want D-LOCK-01 text \"failed to lock data-path: cannot flock directory <dir> - ... (possibly in use by another instance of nsqd)\"", err)
	}

	missing := filepath.Join(t.TempDir(), "nonexistent")
	n3, err := nsqd.New(clOpts(t, missing))
	if err == nil {
		n3.Exit()
		t.Errorf("nsqd.New with a missing data path succeeded (D-CLI-21)")
	} else if !strings.Contains(err.Error(), "failed to lock data-path") {
		t.Errorf("missing data path: error %q, want \"failed to lock data-path: open ...\" (D-CLI-21)", err)
	}

	first.exit()
	// released at exit
	clStart(t, clOpts(t, dataPath))
}

// ---------------------------------------------------------------------------
// a DPUB that overflows the topic memory queue to disk keeps its delay
// (NSQ loses it, D-DEF-02; our policy fixes that), also across a restart.

func TestDurabilityDeferredOverflowKeepsDelay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		memSize int64
		restart bool
	}{
		{"mem-queue-size=0", 0, false},
		{"mem-queue-size=1", 1, false},
		{"mem-queue-size=1+restart", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const topicName, n, delay = "dpub_overflow", 5, 2500 * time.Millisecond
			dataPath := t.TempDir()
			opts := clOpts(t, dataPath)
			opts.MemQueueSize = tc.memSize
			node := clStart(t, opts)
			topic := node.n.GetTopic(topicName)
			topic.GetChannel("c")
			// a paused topic does not drain its memory queue: DPUBs beyond
			// mem-queue-size must go to the topic's disk queue
			if err := topic.Pause(); err != nil {
				t.Fatalf("Pause: %v", err)
			}
			p := clProducer(t, node.addr())
			want := map[string]durExpect{}
			for i := 0; i < n; i++ {
				b := fmt.Sprintf("od-%d", i)
				at := time.Now()
				if err := p.DeferredPublish(topicName, delay, []byte(b)); err != nil {
					t.Fatalf("DPUB: %v", err)
				}
				want[b] = durExpect{attempts: 1, notBefore: at.Add(delay)}
			}
			clEventually(t, 2*time.Second, func() bool { return topic.Depth() == n }, "topic depth %d (have %d)", n, topic.Depth())
			if be := topic.BackendDepth(); be < n-tc.memSize {
				t.Errorf("topic backend_depth = %d, want >= %d: DPUBs beyond mem-queue-size %d go to disk (D-QUEUE-01)", be, n-tc.memSize, tc.memSize)
			}
			if tc.restart {
				p.Stop()
				node.exit()
				node = clStart(t, clOpts(t, dataPath))
				clEventually(t, 5*time.Second, func() bool {
					var err error
					topic, err = node.n.GetExistingTopic(topicName)
					return err == nil
				}, "topic restored")
				if topic == nil {
					t.FailNow()
				}
				if !topic.IsPaused() {
					t.Errorf("topic not paused after restart")
				}
			}
			rc := durDial(t, node.addr())
			rc.sub(t, topicName, "c", 10)
			l := rc.autoFin()
			if err := topic.UnPause(); err != nil {
				t.Fatalf("UnPause: %v", err)
			}
			durCheck(t, topicName+"/c", l, want, delay+5*time.Second)
		})
	}
}

// ---------------------------------------------------------------------------
// D-TCP-10, D-INFL-02, Q-23: in-flight messages of a dropped connection come
// back after the msg timeout (attempts 2, timeout_count 1).

func (d *durConn) identify(t testing.TB, body string) {
	t.Helper()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if err := d.write(append(append([]byte("IDENTIFY\n"), hdr[:]...), body...)); err != nil {
		t.Fatalf("IDENTIFY: %v", err)
	}
	d.expectOK(t, "IDENTIFY "+body)
}

func TestRawDisconnectInFlightIsRequeued(t *testing.T) {
	node := clStart(t, clOpts(t, ""))
	const topicName = "raw_disconnect"
	ch := node.n.GetTopic(topicName).GetChannel("c")
	a := durDial(t, node.addr())
	a.identify(t, `{"msg_timeout":1000}`)
	a.sub(t, topicName, "c", 1)
	p := clProducer(t, node.addr())
	if err := p.Publish(topicName, []byte("dropped")); err != nil {
		t.Fatalf("PUB: %v", err)
	}
	first := a.recv(t, 1, 5*time.Second)[0]
	a.c.Close()
	b := durDial(t, node.addr())
	b.sub(t, topicName, "c", 1)
	second := b.recv(t, 1, 5*time.Second)[0]
	t.Logf("redelivered to another client %v after the first delivery", second.at.Sub(first.at))
	if second.at.Sub(first.at) > time.Second+clLateSlack {
		t.Errorf("in-flight message of a dropped client redelivered only after %v (msg_timeout 1s)", second.at.Sub(first.at))
	}
	if second.id != first.id || second.attempts != 2 || second.body != "dropped" {
		t.Errorf("redelivery %s attempts %d %q, want %s 2 %q", second.id, second.attempts, second.body, first.id, "dropped")
	}
	if got := ch.TimeoutCount(); got != 1 {
		t.Errorf("channel timeout_count = %d, want 1", got)
	}
}

// ---------------------------------------------------------------------------
// D-SHUT-01 / API contract: Exit right after `go Main()` is a clean shutdown
// (no race between Main starting its loops and Exit waiting for them) and
// releases the data-path lock (D-LOCK-01).

func TestDurabilityExitRightAfterMain(t *testing.T) {
	dataPath := t.TempDir()
	for i := 0; i < 10; i++ {
		node := clStart(t, clOpts(t, dataPath))
		node.exit()
	}
}

// PUBs and MPUBs that overflow a channel's memory queue are acknowledged while their
// disk write is still behind (backend_writebehind.go): they are counted at
// once, and a clean exit right after the last OK keeps every one of them.
func TestDurabilitySpilledPUBsSurviveRestart(t *testing.T) {
	t.Parallel()
	const topicName, n = "spill_restart", 500
	dataPath := t.TempDir()
	opts := clOpts(t, dataPath)
	opts.MemQueueSize = 10
	node := clStart(t, opts)
	ch := node.n.GetTopic(topicName).GetChannel("c")
	p := clProducer(t, node.addr())
	want := map[string]durExpect{}
	for i := 0; i < n; i++ {
		b := fmt.Sprintf("sp-%d", i)
		if err := p.Publish(topicName, []byte(b)); err != nil {
			t.Fatalf("PUB: %v", err)
		}
		want[b] = durExpect{attempts: 1}
	}
	// MPUB batches are written behind the same way
	for i := 0; i < n; i += 50 {
		var batch [][]byte
		for j := i; j < i+50; j++ {
			b := fmt.Sprintf("smp-%d", j)
			batch = append(batch, []byte(b))
			want[b] = durExpect{attempts: 1}
		}
		if err := p.MultiPublish(topicName, batch); err != nil {
			t.Fatalf("MPUB: %v", err)
		}
	}
	if d := ch.Depth(); d != 2*n {
		t.Errorf("channel depth right after the last OK: %d, want %d", d, 2*n)
	}
	p.Stop()
	node.exit()

	node = clStart(t, clOpts(t, dataPath))
	rc := durDial(t, node.addr())
	rc.sub(t, topicName, "c", 50)
	durCheck(t, topicName+"/c", rc.autoFin(), want, 10*time.Second)
}
