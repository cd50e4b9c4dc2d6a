package nsqd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/ournsq/nsq/internal/lg"
)

// D-META-01: nsqd.dat is NSQ's JSON: sorted here, ephemeral entries left out,
// a topic without channels has "channels":null, no trailing newline.
func TestMetadataFormat(t *testing.T) {
	n := startTestNSQD(t, nil)
	n.GetTopic("b").GetChannel("c1")
	n.GetTopic("b").GetChannel("c0#ephemeral")
	n.GetTopic("a")
	n.GetTopic("e#ephemeral").GetChannel("x")
	tp, _ := n.GetExistingTopic("b")
	ch, _ := tp.GetExistingChannel("c1")
	ch.Pause()
	if err := n.PersistMetadata(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(n.getOpts().DataPath, "nsqd.dat"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"topics":[{"name":"a","paused":false,"channels":null},` +
		`{"name":"b","paused":false,"channels":[{"name":"c1","paused":true}]}],"version":"1.3.0"}`
	if string(got) != want {
		t.Fatalf("nsqd.dat\n got %s\nwant %s", got, want)
	}
}

// D-DISK-01: diskqueue file names for topics and channels; D-QUEUE-02:
// with --mem-queue-size=0 every message goes through them. A queue's files
// appear when it first writes to disk (backend_lazy.go): a topic with
// channels hands messages to them directly, and a queue that never spilled
// over leaves no files.
func TestDiskQueueFileNames(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.MemQueueSize = 0 })
	topic := n.GetTopic("files")
	ch := topic.GetChannel("ch")
	for i := 0; i < 3; i++ {
		if err := topic.PutMessage(NewMessage(topic.GenerateID(), []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return ch.BackendDepth() == 3 }, "channel be-depth 3")
	// a topic without channels keeps its messages in its own queue
	lonely := n.GetTopic("lonely")
	if err := lonely.PutMessage(NewMessage(lonely.GenerateID(), []byte("x"))); err != nil {
		t.Fatal(err)
	}
	unused := n.GetTopic("unused")
	unused.GetChannel("idle")
	n.Exit() // closing persists the meta files (Exit runs once; cleanup's call is a no-op)
	names, _ := filepath.Glob(filepath.Join(n.getOpts().DataPath, "*"))
	var base []string
	for _, p := range names {
		base = append(base, filepath.Base(p))
	}
	sort.Strings(base)
	joined := strings.Join(base, " ")
	for _, want := range []string{"files:ch.diskqueue.000000.dat", "files:ch.diskqueue.meta.dat",
		"lonely.diskqueue.000000.dat", "lonely.diskqueue.meta.dat"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %s in %s", want, joined)
		}
	}
	for _, unwanted := range []string{"files.diskqueue", "unused", "idle"} {
		if strings.Contains(joined, unwanted) {
			t.Errorf("a queue that never wrote to disk left files: %s in %s", unwanted, joined)
		}
	}
}

// D-EPH-03: an ephemeral topic with --mem-queue-size=0 and no channel keeps
// nothing: message_count grows, depth stays 0.
func TestEphemeralUnbufferedDrops(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.MemQueueSize = 0 })
	topic := n.GetTopic("e#ephemeral")
	for i := 0; i < 2; i++ {
		if err := topic.PutMessage(NewMessage(topic.GenerateID(), []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	if topic.MessageCount() != 2 || topic.Depth() != 0 {
		t.Fatalf("message_count %d depth %d, want 2 and 0", topic.MessageCount(), topic.Depth())
	}
}

type failingBackend struct {
	dummyBackend
	fail bool
}

func (f *failingBackend) Put([]byte) error {
	if f.fail {
		return errors.New("disk full")
	}
	return nil
}

// D-QUEUE-04: a failed backend write makes nsqd unhealthy and the put fails;
// the next successful write makes it healthy again.
func TestHealthFollowsBackendWrites(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.MemQueueSize = 0 })
	topic := n.GetTopic("h")
	fb := &failingBackend{dummyBackend: dummyBackend{readChan: make(chan []byte)}, fail: true}
	topic.Lock()
	topic.backend = fb
	topic.Unlock()

	err := topic.PutMessage(NewMessage(topic.GenerateID(), []byte("x")))
	if err == nil || n.IsHealthy() || n.GetHealth() != "NOK - disk full" {
		t.Fatalf("after failed write: err %v, health %q", err, n.GetHealth())
	}
	fb.fail = false
	if err := topic.PutMessage(NewMessage(topic.GenerateID(), []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if !n.IsHealthy() || n.GetHealth() != "OK" {
		t.Fatalf("after good write: health %q", n.GetHealth())
	}
}

// D-CLI-04, D-LOG-01: NSQ's line format, levels below the configured one
// dropped, level changeable at runtime.
func TestLogFormatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	n := &NSQD{logger: log.New(&buf, "[nsqd] ", log.Ldate|log.Ltime|log.Lmicroseconds)}
	n.logLevel.Store(lg.INFO)
	n.logf(lg.DEBUG, "hidden")
	n.logf(lg.WARN, "shown %d", 1)
	n.logLevel.Store(lg.DEBUG)
	n.logf(lg.DEBUG, "now shown")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	re := regexp.MustCompile(`^\[nsqd\] \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d{6} (WARNING: shown 1|DEBUG: now shown)$`)
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), lines)
	}
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("bad log line %q", l)
		}
	}
}

// D-SCAN-01: the worker pool is clamp(channels/4, 1, max).
func TestScanWorkerPoolSize(t *testing.T) {
	p := &scanWorkerPool{workCh: make(chan *Channel), closeCh: make(chan struct{})}
	defer p.stopAll()
	for _, c := range []struct{ channels, max, want int }{
		{0, 4, 1}, {3, 4, 1}, {8, 4, 2}, {100, 4, 4}, {100, 10, 10}, {4, 10, 1},
	} {
		p.resize(c.channels, c.max)
		if p.size != c.want {
			t.Errorf("resize(%d, %d) = %d workers, want %d", c.channels, c.max, p.size, c.want)
		}
	}
}

func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawRoundTrip sends cmd on a fresh V2 connection to addr and returns the
// first frame (type, data) and whether the server then closed the socket.
func rawRoundTrip(t *testing.T, network, addr string, cmd []byte) (int32, string, bool) {
	t.Helper()
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(append([]byte("  V2"), cmd...)); err != nil {
		t.Fatal(err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		t.Fatal(err)
	}
	size := binary.BigEndian.Uint32(hdr[0:4])
	data := make([]byte, size-4)
	if _, err := io.ReadFull(conn, data); err != nil {
		t.Fatal(err)
	}
	// a fatal error closes at once; an open connection just times out
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	return int32(binary.BigEndian.Uint32(hdr[4:8])), string(data), err == io.EOF
}

func pubBody(cmd string, body string) []byte {
	b := []byte(cmd + "\n")
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// D-ERR-47, D-ERR-51, D-ERR-54: a backend write failure is a fatal
// E_PUB_FAILED / E_MPUB_FAILED / E_DPUB_FAILED with the cause.
func TestPutFailureErrors(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.MemQueueSize = 0 })
	topic := n.GetTopic("full")
	topic.Lock()
	topic.backend = &failingBackend{dummyBackend: dummyBackend{readChan: make(chan []byte)}, fail: true}
	topic.Unlock()

	mpub := []byte("MPUB full\n")
	mpub = binary.BigEndian.AppendUint32(mpub, 4+4+1)
	mpub = binary.BigEndian.AppendUint32(mpub, 1)
	mpub = binary.BigEndian.AppendUint32(mpub, 1)
	mpub = append(mpub, 'x')
	for _, c := range []struct {
		cmd  []byte
		want string
	}{
		{pubBody("PUB full", "x"), "E_PUB_FAILED PUB failed disk full"},
		{mpub, "E_MPUB_FAILED MPUB failed disk full"},
		{pubBody("DPUB full 1000", "x"), "E_DPUB_FAILED DPUB failed disk full"},
	} {
		ft, data, closed := rawRoundTrip(t, "tcp", n.RealTCPAddr().String(), c.cmd)
		if ft != frameTypeError || data != c.want || !closed {
			t.Errorf("got frame %d %q closed=%v, want error %q and close", ft, data, closed, c.want)
		}
	}
}

// D-UNIX-01, D-CLI-08: a --tcp-address that is not host:port is a unix
// socket; /info-style ports are -1 and the broadcast port stays 0.
func TestTCPOverUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nsqd.sock")
	n := startTestNSQD(t, func(o *Options) { o.TCPAddress = sock })
	ft, data, _ := rawRoundTrip(t, "unix", sock, pubBody("PUB u", "hello"))
	if ft != frameTypeResponse || data != "OK" {
		t.Fatalf("PUB over unix socket: %d %q", ft, data)
	}
	if n.tcpPort() != -1 || n.getOpts().BroadcastTCPPort != 0 {
		t.Fatalf("tcp port %d broadcast %d, want -1 and 0", n.tcpPort(), n.getOpts().BroadcastTCPPort)
	}

	// and consume it over the socket (the topic kept it until the channel came)
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("  V2SUB u ch\nRDY 1\n"))
	var got []string
	for len(got) < 2 {
		var hdr [8]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, binary.BigEndian.Uint32(hdr[0:4])-4)
		if _, err := io.ReadFull(conn, data); err != nil {
			t.Fatal(err)
		}
		if ft := int32(binary.BigEndian.Uint32(hdr[4:8])); ft == frameTypeMessage {
			got = append(got, "msg:"+string(data[wireHeaderLength:]))
		} else {
			got = append(got, string(data))
		}
	}
	if got[0] != "OK" || got[1] != "msg:hello" {
		t.Fatalf("SUB over unix socket got %q, want OK then the message", got)
	}
	n.Exit()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file left behind: %v", err)
	}
}

// A message read from disk shares its record's buffer, which may hold a
// whole MPUB batch: deferring it (REQ with a timeout, a due DPUB record)
// copies its body so that it does not keep the batch alive.
func TestDeferredDiskMessageKeepsOnlyItsBody(t *testing.T) {
	n := startTestNSQD(t, nil)
	ch := n.GetTopic("defer_copy").GetChannel("c")
	record := bytes.Repeat([]byte("x"), 64<<10)
	m := NewMessage(MessageID{'1'}, record[100:300:300])
	m.ref = &diskRef{} // as read from a disk queue; never released here
	if err := ch.StartDeferredTimeout(m, time.Hour); err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(m.Body) == unsafe.SliceData(record[100:]) {
		t.Fatal("a deferred disk message still points into its record")
	}
	if !bytes.Equal(m.Body, record[100:300]) {
		t.Fatal("body changed")
	}
	mem := NewMessage(MessageID{'2'}, record[300:400:400]) // from a publisher
	if err := ch.StartDeferredTimeout(mem, time.Hour); err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(mem.Body) != unsafe.SliceData(record[300:]) {
		t.Fatal("a memory message's body is its own already: no copy needed")
	}
}

// An MPUB's messages share body and Message blocks (readMPUB); a REQ with
// a timeout moves the message out of both, so a message waiting for hours
// does not keep its whole batch in memory.
func TestDeferredMPUBMessageLeavesItsBlocks(t *testing.T) {
	n := startTestNSQD(t, nil)
	topic := n.GetTopic("defer_mpub")
	ch := topic.GetChannel("c")
	var frame bytes.Buffer
	binary.Write(&frame, binary.BigEndian, int32(3))
	for _, b := range []string{"one", "two", "three"} {
		binary.Write(&frame, binary.BigEndian, int32(len(b)))
		frame.WriteString(b)
	}
	msgs, cerr := readMPUB(bufio.NewReader(&frame), topic, 1<<20, 1<<20)
	if cerr != nil {
		t.Fatal(cerr)
	}
	if !msgs[1].inBatch || !msgs[1].sharedBody || &msgs[1] == &msgs[0] {
		t.Fatal("readMPUB must carve messages from blocks")
	}
	if unsafe.SliceData(msgs[1].Body) != (*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(msgs[0].Body)), len(msgs[0].Body))) {
		t.Fatal("bodies of one MPUB must share a block")
	}
	orig, origBody := msgs[1], unsafe.SliceData(msgs[1].Body)
	if err := ch.StartDeferredTimeout(orig, time.Hour); err != nil {
		t.Fatal(err)
	}
	ch.deferredMutex.Lock()
	tracked := ch.deferredMessages.get(orig.ID)
	ch.deferredMutex.Unlock()
	if tracked == nil || tracked == orig || tracked.inBatch {
		t.Fatal("the deferred set must hold a copy outside the Message block")
	}
	if unsafe.SliceData(tracked.Body) == origBody || string(tracked.Body) != "two" || tracked.sharedBody {
		t.Fatalf("the deferred copy must own its body, got %q", tracked.Body)
	}
}

// fillAt hands out at most the 4096 sequence numbers of one tick, in
// increasing order, sharing the tick with single IDs (nextAt).
func TestGUIDFillAtSharesTheTick(t *testing.T) {
	f := newGUIDFactory(7)
	now := time.Now().UnixNano()
	first, err := f.nextAt(now)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]guid, 5000)
	n, err := f.fillAt(now, ids)
	if n != 4095 || err != errSequenceExpired {
		t.Fatalf("fillAt in a used tick: %d IDs, %v; want 4095, errSequenceExpired", n, err)
	}
	prev := first
	for _, id := range ids[:n] {
		if id <= prev {
			t.Fatalf("IDs not increasing: %d after %d", id, prev)
		}
		prev = id
	}
	if _, err := f.nextAt(now); err == nil {
		t.Fatal("the tick's sequence is used up: nextAt must fail")
	}
	next := now + 1<<20
	n, err = f.fillAt(next, ids[:3])
	if n != 3 || err != nil || ids[0] <= prev {
		t.Fatalf("next tick: %d IDs, %v, first %d after %d", n, err, ids[0], prev)
	}
	if _, err := f.fillAt(now, ids[:1]); err != errTimeBackwards {
		t.Fatalf("an earlier tick must be refused, got %v", err)
	}
}

// An MPUB larger than a tick's sequence still gets unique increasing IDs
// (stampNew waits for the next tick) and a timestamp each.
func TestStampNewBeyondOneTick(t *testing.T) {
	n := startTestNSQD(t, nil)
	topic := n.GetTopic("stamp")
	msgs := make([]*Message, 10000)
	for i := range msgs {
		msgs[i] = &Message{Body: []byte("x")}
	}
	before := time.Now().UnixNano()
	topic.stampNew(msgs)
	after := time.Now().UnixNano()
	seen := make(map[MessageID]bool, len(msgs))
	var prev MessageID
	for i, m := range msgs {
		if seen[m.ID] || (i > 0 && string(m.ID[:]) <= string(prev[:])) {
			t.Fatalf("message %d: ID %s not new and increasing (previous %s)", i, m.ID[:], prev[:])
		}
		seen[m.ID] = true
		prev = m.ID
		if m.Timestamp < before || m.Timestamp > after {
			t.Fatalf("message %d: timestamp %d outside [%d, %d]", i, m.Timestamp, before, after)
		}
	}
}

// The declared length of a text /mpub only sizes blocks: too small, too
// large or unknown, the messages are the same.
func TestTextMPUBSizeHintOnlySizesBlocks(t *testing.T) {
	n := startTestNSQD(t, nil)
	topic := n.GetTopic("text_hint")
	var body strings.Builder
	var want []string
	for i := 0; i < 700; i++ {
		line := strings.Repeat(string(rune('a'+i%26)), 1+i%300)
		want = append(want, line)
		body.WriteString(line + "\n")
		if i%50 == 0 {
			body.WriteString("\n") // empty lines are skipped
		}
	}
	for _, hint := range []int64{-1, 0, 5, int64(body.Len()), 1 << 30} {
		msgs, err := readTextMPUBInto(strings.NewReader(body.String()), hint, topic, 1<<20, 1<<20, &mpubScratch{})
		if err != nil {
			t.Fatalf("hint %d: %v", hint, err)
		}
		if len(msgs) != len(want) {
			t.Fatalf("hint %d: %d messages, want %d", hint, len(msgs), len(want))
		}
		for i, m := range msgs {
			if string(m.Body) != want[i] || cap(m.Body) != len(m.Body) {
				t.Fatalf("hint %d: message %d is %q (cap %d), want %q", hint, i, m.Body, cap(m.Body), want[i])
			}
		}
	}
}

// A pump's messages from the disk queue share slab arrays; one that is
// deferred for long is copied out of its array and out of its record, so
// it keeps neither alive while it waits; one deferred for a few ms is not.
func TestFromBackendSlabAndDeferCopy(t *testing.T) {
	n := startTestNSQD(t, func(o *Options) { o.MemQueueSize = 0 })
	ch := n.GetTopic("slab").GetChannel("c")
	for i := 0; i < 3; i++ {
		if err := ch.PutMessage(NewMessage(n.GetTopic("slab").GenerateID(), []byte(fmt.Sprintf("m%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	var slab messageSlab
	var got []*Message
	for len(got) < 3 {
		select {
		case b := <-ch.backend.ReadChan():
			if m := ch.fromBackend(b, &slab); m != nil {
				got = append(got, m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("read %d of 3", len(got))
		}
	}
	for i, m := range got {
		if string(m.Body) != fmt.Sprintf("m%d", i) || !m.inBatch || m.ref == nil {
			t.Errorf("message %d: body %q inBatch %v ref %v", i, m.Body, m.inBatch, m.ref)
		}
	}
	if &slab.free[0] != (*Message)(unsafe.Add(unsafe.Pointer(got[2]), unsafe.Sizeof(Message{}))) {
		t.Error("the messages are not consecutive elements of one slab array")
	}
	m := got[1]
	recordBody := &m.Body[0]
	if err := ch.StartDeferredTimeout(m, time.Hour); err != nil {
		t.Fatal(err)
	}
	ch.deferredMutex.Lock()
	d := ch.deferredMessages.get(m.ID)
	ch.deferredMutex.Unlock()
	if d == nil || d == m || d.inBatch || string(d.Body) != "m1" || &d.Body[0] == recordBody {
		t.Errorf("deferred: %p (slab element %p) inBatch %v body %q (still in the record: %v)", d, m, d != nil && d.inBatch, d.Body, d != nil && &d.Body[0] == recordBody)
	}
	// a short deferral (a REQ with a few ms) keeps the message where it
	// is: copying it out cost two allocations per REQ
	short := got[2]
	if err := ch.StartDeferredTimeout(short, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ch.deferredMutex.Lock()
	ds := ch.deferredMessages.get(short.ID)
	ch.deferredMutex.Unlock()
	if ds != short || !ds.inBatch || string(ds.Body) != "m2" {
		t.Errorf("deferred for 10ms: %p, want the slab element %p itself", ds, short)
	}
	got[0].releaseRecord()
	d.releaseRecord()
	// once due it goes back to the queue (as the queue scan does it);
	// the hour-long one stays
	waitFor(t, func() bool {
		ch.processDeferredQueue(time.Now().UnixNano())
		return ch.DeferredCount() == 1 && ch.Depth() == 1
	}, "the short deferral back in the queue")
}

// A message whose ID is already in flight on the channel is refused by a
// batch (the pump defers it), the rest of the batch goes in flight, and
// the first message with that ID stays tracked and owned by its client.
func TestStartInFlightBatchKeepsTheFirstOfTwoIDs(t *testing.T) {
	n := startTestNSQD(t, nil)
	ch := n.GetTopic("dupid").GetChannel("c")
	id := n.GetTopic("dupid").GenerateID()
	first := NewMessage(id, []byte("first"))
	other := NewMessage(n.GetTopic("dupid").GenerateID(), []byte("other"))
	now := time.Now()
	if started, dups := ch.startInFlightBatch([]*Message{first}, 1, time.Minute, now); len(started) != 1 || dups != nil {
		t.Fatalf("first: started %d, dups %d", len(started), len(dups))
	}
	// the same ID again, in a batch with another message, and with a
	// shorter timeout (so it would sit in the heap, not the FIFO)
	again := NewMessage(id, []byte("again"))
	started, dups := ch.startInFlightBatch([]*Message{again, other}, 2, time.Second, now)
	if len(started) != 1 || started[0] != other || len(dups) != 1 || dups[0] != again {
		t.Fatalf("second batch: started %v, dups %v", started, dups)
	}
	if got := ch.InFlightCount(); got != 2 {
		t.Errorf("in flight %d, want 2", got)
	}
	if err := ch.FinishMessage(2, id); err != errNotOwner {
		t.Errorf("FIN of the ID by the second client: %v, want %v (the first stays its owner)", err, errNotOwner)
	}
	if err := ch.FinishMessage(1, id); err != nil {
		t.Errorf("FIN by the owner: %v", err)
	}
	if err := ch.FinishMessage(2, other.ID); err != nil {
		t.Errorf("FIN of the other message: %v", err)
	}
	if got := ch.InFlightCount(); got != 0 || ch.inFlight.Len() != 0 {
		t.Errorf("in flight %d (queue %d) after both FINs", got, ch.inFlight.Len())
	}
}
