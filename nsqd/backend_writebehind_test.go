package nsqd

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// wbRecorder is an inner backend that records what is written and can be
// made to fail.
type wbRecorder struct {
	dummyBackend
	mu   sync.Mutex
	recs [][]byte
	fail error
	gate chan struct{} // if set, every Put first takes a token from it
}

func (r *wbRecorder) Put(b []byte) error {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.recs = append(r.recs, append([]byte(nil), b...))
	return nil
}

func (r *wbRecorder) setFail(err error) { r.mu.Lock(); r.fail = err; r.mu.Unlock() }

// bodies returns the bodies written so far, in order.
func (r *wbRecorder) bodies(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var got []string
	for _, rec := range r.recs {
		got = append(got, bodyOf(t, rec))
	}
	return got
}

type wbReports struct {
	mu   sync.Mutex
	errs []error
	held []int
}

func (w *wbReports) report(err error, held int) {
	w.mu.Lock()
	w.errs = append(w.errs, err)
	w.held = append(w.held, held)
	w.mu.Unlock()
}

func (w *wbReports) last() (error, int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) == 0 {
		return nil, 0, 0
	}
	return w.errs[len(w.errs)-1], w.held[len(w.held)-1], len(w.errs)
}

// Spilled messages are acknowledged at once, counted by Depth while they
// wait, and reach the disk queue within writeBehindDelay as one batch
// record that reads back as the same messages, in order, delays kept.
func TestWriteBehindBatchesIntoOneRecord(t *testing.T) {
	q, _ := openBatchBackend(t, t.TempDir(), 1<<20)
	var rep wbReports
	w := newWriteBehindBackend(q, rep.report)
	w.delay = time.Hour // the timer test is below; here the write is forced
	msgs := btMsgs(0, 50)
	for i, m := range msgs {
		if err := writeMessageToBackend(m, int64(i%3), w); err != nil {
			t.Fatal(err)
		}
	}
	if d := w.Depth(); d != 50 {
		t.Errorf("depth right after the puts: %d, want 50", d)
	}
	if w.isEmpty() {
		t.Error("isEmpty with 50 messages buffered")
	}
	// one batch record: go-diskqueue's 4-byte frame, the batch header,
	// an entry per message
	want := int64(4 + batchHeaderLength)
	for _, m := range msgs {
		want += int64(batchEntryHeader + diskV1Size(m))
	}
	written := func() int64 { q.wmu.Lock(); defer q.wmu.Unlock(); return q.w.pos }
	if got := written(); got != 0 {
		t.Fatalf("%d bytes written before the delay", got)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if got := written(); got != want {
		t.Errorf("%d bytes written for 50 spilled messages, want %d (one batch record)", got, want)
	}
	if d := w.Depth(); d != 50 {
		t.Errorf("depth after the write: %d, want 50", d)
	}
	if err, held, _ := rep.last(); err != nil || held != 0 {
		t.Errorf("report: %v, %d held", err, held)
	}
	var got []string
	for i := 0; i < 50; i++ {
		b := <-q.ReadChan()
		m, err := decodeDiskMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		if m.deliverAt != int64(i%3) || m.ID != msgs[i].ID {
			t.Errorf("message %d: deliverAt %d id %x", i, m.deliverAt, m.ID)
		}
		got = append(got, bodyOf(t, b))
		q.claim(b, false).release()
	}
	if strings.Join(got, " ") != strings.Join(names(0, 50), " ") {
		t.Errorf("read %v", got)
	}
	w.Close()
}

// Without further puts, the timer writes a buffered message within
// writeBehindDelay (bounded wait: the machine may be slow).
func TestWriteBehindTimerWrites(t *testing.T) {
	r := &wbRecorder{}
	w := newWriteBehindBackend(r, func(error, int) {})
	start := time.Now()
	writeMessageToBackend(btMsgs(0, 1)[0], 0, w)
	waitFor(t, func() bool { return len(r.bodies(t)) == 1 }, "the timer's write")
	t.Logf("written after %v", time.Since(start))
	if d := w.Depth(); d != 0 {
		t.Errorf("depth %d after the write (the recorder counts nothing)", d)
	}
}

// A message that came from a disk queue (it holds a claim on its record)
// is written through, after what is buffered; so is an MPUB batch holding
// such a message. A fresh MPUB batch is buffered like single messages.
func TestWriteBehindWritesThroughInOrder(t *testing.T) {
	r := &wbRecorder{}
	w := newWriteBehindBackend(r, func(error, int) {})
	w.delay = time.Hour // only what is written through writes
	msgs := btMsgs(0, 9)
	writeMessageToBackend(msgs[0], 0, w)
	writeMessageToBackend(msgs[1], 0, w)
	if got := r.bodies(t); len(got) != 0 {
		t.Fatalf("written before the delay: %v", got)
	}
	msgs[2].ref = &diskRef{}
	if err := writeMessageToBackend(msgs[2], 0, w); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.bodies(t), " "); got != "m0 m1 m2" {
		t.Errorf("after a claimed message: %q, want m0 m1 m2", got)
	}
	writeMessageToBackend(msgs[3], 0, w)
	if n, err := writeMessagesToBackend(msgs[4:6], w); n != 2 || err != nil {
		t.Fatalf("putMessages: %d %v", n, err)
	}
	if got := strings.Join(r.bodies(t), " "); got != "m0 m1 m2" {
		t.Errorf("a fresh MPUB was written through: %q", got)
	}
	if d := w.Depth(); d != 3 {
		t.Errorf("depth %d with m3 m4 m5 buffered, want 3", d)
	}
	msgs[7].ref = &diskRef{}
	if n, err := writeMessagesToBackend(msgs[6:9], w); n != 3 || err != nil {
		t.Fatalf("putMessages: %d %v", n, err)
	}
	if got := strings.Join(r.bodies(t), " "); got != "m0 m1 m2 m3 m4 m5 m6 m7 m8" {
		t.Errorf("after an MPUB with a claimed message: %q", got)
	}
	if d := w.Depth(); d != 0 {
		t.Errorf("depth %d with nothing buffered", d)
	}
}

// A full buffer is written at once by the timer's goroutine, not by the
// publisher that filled it; while that write is under way the next
// messages are buffered, and a publisher writes itself only once twice
// the limit waits. A message too large to buffer is written through.
func TestWriteBehindFullBufferAndLargeMessage(t *testing.T) {
	r := &wbRecorder{gate: make(chan struct{})}
	w := newWriteBehindBackend(r, func(error, int) {})
	w.delay = time.Hour // only a full buffer writes
	body := "b/" + strings.Repeat("b", 998)
	put := func() { writeMessageToBackend(&Message{Body: []byte(body)}, 0, w) }
	perBuffer := 0
	// (the timer's goroutine may take the full buffer before the loop
	// looks at it again: then the buffer is empty and writing is set)
	for w.mu.Lock(); len(w.buf) < writeBehindMaxBytes && w.writing == 0; w.mu.Lock() {
		w.mu.Unlock()
		put()
		perBuffer++
	}
	w.mu.Unlock()
	// the timer's goroutine took the full buffer and waits in Put
	// (Depth waits for the write: count what is buffered and being written)
	held := func() (buffered, writing int) { w.mu.Lock(); defer w.mu.Unlock(); return w.n, w.writing }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b, wr := held()
		if b == 0 && wr == perBuffer {
			break
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			armed, now := w.armed, w.now
			w.mu.Unlock()
			t.Fatalf("the timer's goroutine did not take the full buffer: %d buffered, %d being written, %d put (armed %v, now %v)", b, wr, perBuffer, armed, now)
		}
	}
	// the publisher goes on: about two buffers' worth is accepted while
	// the first write waits, then it waits too
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3*perBuffer; i++ {
			put()
		}
	}()
	select {
	case <-done:
		t.Fatal("the publisher never waited although the writes fell two buffers behind")
	case <-time.After(200 * time.Millisecond):
	}
	if b, wr := held(); b+wr < 2*perBuffer || b+wr >= 4*perBuffer {
		t.Errorf("%d buffered + %d being written while the first write waits, want %d..%d in all", b, wr, 2*perBuffer, 4*perBuffer-1)
	}
	close(r.gate) // the disk works
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher is still blocked after the writes went through")
	}
	w.flush()
	if got := len(r.bodies(t)); got != 4*perBuffer {
		t.Errorf("%d messages written, want %d", got, 4*perBuffer)
	}
	big := &Message{Body: []byte("big/" + strings.Repeat("b", writeBehindMaxBytes/4))}
	before := len(r.bodies(t))
	writeMessageToBackend(big, 0, w)
	if got := len(r.bodies(t)); got != before+1 {
		t.Errorf("a large message was not written through: %d records, want %d", got, before+1)
	}
}

// A failed write keeps the messages and reports the error; meanwhile
// puts write through and get the error; the retry writes the held
// messages first once the disk works again. Nothing is lost or doubled.
func TestWriteBehindFailureHoldsAndRetries(t *testing.T) {
	r := &wbRecorder{}
	var rep wbReports
	w := newWriteBehindBackend(r, rep.report)
	// the first write is the test's, not the timer's: on a stalled machine
	// the timer could write the first put alone, and the next puts would
	// then (rightly) be written through and fail (a CI run)
	w.delay = time.Hour
	diskFull := errors.New("disk full")
	r.setFail(diskFull)
	msgs := btMsgs(0, 5)
	for _, m := range msgs[:3] {
		if err := writeMessageToBackend(m, 0, w); err != nil {
			t.Fatalf("put before the failure is seen: %v", err)
		}
	}
	if err := w.flush(); err != diskFull {
		t.Fatalf("the write: %v, want disk full", err)
	}
	if err, held, _ := rep.last(); err != diskFull || held != 3 {
		t.Errorf("report: %v, %d held; want disk full, 3", err, held)
	}
	if d := w.Depth(); d != 3 {
		t.Errorf("depth %d while 3 are held", d)
	}
	if err := writeMessageToBackend(msgs[3], 0, w); err != diskFull {
		t.Errorf("put while failing: %v, want the write's error", err)
	}
	if d := w.Depth(); d != 3 {
		t.Errorf("depth %d after a refused put", d)
	}
	r.setFail(nil)
	waitFor(t, func() bool { return len(r.bodies(t)) == 3 }, "the retry")
	if err, held, _ := rep.last(); err != nil || held != 0 {
		t.Errorf("report after the retry: %v, %d held", err, held)
	}
	if err := writeMessageToBackend(msgs[4], 0, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := strings.Join(r.bodies(t), " "); got != "m0 m1 m2 m4" {
		t.Errorf("written: %q, want m0 m1 m2 m4", got)
	}
	if err := writeMessageToBackend(msgs[0], 0, w); err == nil {
		t.Error("put after Close succeeded")
	}
}

// Close writes what is buffered (a clean exit keeps every message);
// Empty and Delete drop it.
func TestWriteBehindCloseEmptyDelete(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 1<<20)
	w := newWriteBehindBackend(q, func(error, int) {})
	for _, m := range btMsgs(0, 10) {
		writeMessageToBackend(m, 0, w)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	q2, _ := openBatchBackend(t, dir, 1<<20)
	w2 := newWriteBehindBackend(q2, func(error, int) {})
	if d := w2.Depth(); d != 10 {
		t.Errorf("depth after a restart: %d, want 10", d)
	}
	for _, m := range btMsgs(10, 15) {
		writeMessageToBackend(m, 0, w2)
	}
	if err := w2.Empty(); err != nil {
		t.Fatal(err)
	}
	if d := w2.Depth(); d != 0 {
		t.Errorf("depth after Empty: %d", d)
	}
	time.Sleep(3 * writeBehindDelay)
	if d := w2.Depth(); d != 0 {
		t.Errorf("depth after Empty and the delay: %d (dropped messages written)", d)
	}
	writeMessageToBackend(btMsgs(15, 16)[0], 0, w2)
	if err := w2.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := writeMessageToBackend(btMsgs(16, 17)[0], 0, w2); err == nil {
		t.Error("put after Delete succeeded")
	}
}
