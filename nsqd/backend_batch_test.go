package nsqd

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Batch records in the disk queue (message_batch.go, backend_disk.go):
// read back message by message, counted as messages, finished when all
// their messages are, kept across clean restarts and crashes.

// btMax is the record size limit of the test queues: batches of the test
// messages up to ~16 KiB.
var btMax = diskRecordLimit(1024, 16<<10)

func openBatchBackend(t *testing.T, dir string, maxBytes int64) (*diskBackend, *recLog) {
	t.Helper()
	l := &recLog{}
	q := openDiskBackendOn(make(chan []byte, btReadChanBuffer), "q", dir, maxBytes, rtMin, btMax, 1, 50*time.Millisecond, l.logf)
	return q, l
}

// btReadChanBuffer: the test queues' ReadChan is buffered as nsqd's, but
// smaller, so that the tests' batches span more than the buffer.
const btReadChanBuffer = 16

// btMsgs returns messages from..to-1 with the bodies of record(i).
func btMsgs(from, to int) []*Message {
	var msgs []*Message
	for i := from; i < to; i++ {
		m, err := decodeDiskMessage(record(i))
		if err != nil {
			panic(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func btPut(t *testing.T, q *diskBackend, from, to int) {
	t.Helper()
	if n, err := q.putMessages(btMsgs(from, to)); err != nil || n != to-from {
		t.Fatalf("putMessages %d..%d: %d, %v", from, to, n, err)
	}
}

func btDepth(t *testing.T, q *diskBackend, want int64, what string) {
	t.Helper()
	if d := q.Depth(); d != want {
		t.Errorf("%s: depth %d, want %d", what, d, want)
	}
}

// readAll reads until nothing comes for 150ms, claiming and releasing
// every message. On a stalled machine it can stop early: where the count
// is known, use readCounted.
func readAll(t *testing.T, q *diskBackend) []string {
	t.Helper()
	return readWhile(t, q, -1, 150*time.Millisecond)
}

// readWhile reads up to max messages (max < 0: no limit), each within
// wait, claiming and releasing every one; it stops at the first wait
// that passes without a message.
func readWhile(t *testing.T, q *diskBackend, max int64, wait time.Duration) []string {
	t.Helper()
	var got []string
	for max < 0 || int64(len(got)) < max {
		select {
		case b := <-q.ReadChan():
			got = append(got, bodyOf(t, b))
			q.claim(b, false).release()
			continue
		case <-time.After(wait):
		}
		break
	}
	return got
}

func waitCursor(t *testing.T, q *diskBackend, cond func(cursorState) bool, what string) cursorState {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, counted, ok := readCursorState(q.files.cursor())
		if ok && counted && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor file never showed %s (last %+v ok %v counted %v)", what, st, ok, counted)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A batch is one go-diskqueue record, read back as its messages one by
// one; Depth counts messages; the record is finished with its last
// message.
func TestBackendBatchReadBack(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 1<<20)
	btPut(t, q, 0, 10)
	if err := q.Put(record(10)); err != nil {
		t.Fatal(err)
	}
	btPut(t, q, 11, 20)
	btDepth(t, q, 20, "after the puts")
	if n, err := countRecords(q.files, dqPos{0, 0}, q.wClaim, q.chk, true); n != 3 || err != nil {
		t.Errorf("%d records (%v), want 3 (batch, single, batch)", n, err)
	}
	if q.isEmpty() {
		t.Errorf("isEmpty with 20 queued")
	}
	first := waitCursor(t, q, func(st cursorState) bool { return st.extra == 9+8 }, "extra 17")
	if first.pos != (dqPos{0, 0}) || first.to != q.wClaim {
		t.Errorf("cursor state %+v, write end %v", first, q.wClaim)
	}

	got, refs := readN(t, q, 5)
	if strings.Join(got, " ") != strings.Join(names(0, 5), " ") {
		t.Errorf("read %v", got)
	}
	btDepth(t, q, 15, "5 read")
	for i, r := range refs {
		if i != 3 {
			r.release()
		}
	}
	more, refs2 := readN(t, q, 15)
	if strings.Join(more, " ") != strings.Join(names(5, 20), " ") {
		t.Errorf("read %v", more)
	}
	btDepth(t, q, 0, "all read")
	for _, r := range refs2 {
		r.release()
	}
	// m3 is not finished: the cursor stays at the first batch
	time.Sleep(3 * cursorPersistDelay)
	if st, _, _ := readCursorState(q.files.cursor()); st.pos != (dqPos{0, 0}) {
		t.Errorf("cursor moved to %v with m3 unfinished", st.pos)
	}
	refs[3].release()
	end := waitCursor(t, q, func(st cursorState) bool { return st.pos == q.wClaim }, "the cursor at the end")
	if end.extra != 0 {
		t.Errorf("extra %d with nothing queued", end.extra)
	}
	if !q.isEmpty() {
		t.Errorf("not empty after reading everything")
	}
	expectNothing(t, q)
	q.Close()
	if m, _ := filepath.Glob(filepath.Join(dir, "*.cursor.dat")); len(m) > 0 {
		t.Errorf("cursor file left with nothing queued: %v", m)
	}
}

// A clean restart keeps the depth in messages and the order; messages of
// a batch handed out before the shutdown (their owners wrote them to disk
// again) do not come again.
func TestBackendBatchCleanRestart(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 1<<20)
	btPut(t, q, 0, 10)
	q.Put(record(10))
	btPut(t, q, 11, 20)
	q.Close()
	if _, err := os.Stat(q.files.cursor()); err != nil {
		t.Errorf("no cursor file kept with batches queued: %v", err)
	}

	q, _ = openBatchBackend(t, dir, 1<<20)
	btDepth(t, q, 20, "after a clean restart")
	got, refs := readN(t, q, 3)
	for _, r := range refs {
		r.release()
	}
	if strings.Join(got, " ") != "m0 m1 m2" {
		t.Errorf("read %v", got)
	}
	btDepth(t, q, 17, "3 read")
	q.Close() // the forwarder holds m3..m9

	q, _ = openBatchBackend(t, dir, 1<<20)
	btDepth(t, q, 17, "after a restart with a batch partly read")
	got = readCounted(t, q, 17)
	if strings.Join(got, " ") != strings.Join(names(3, 20), " ") {
		t.Errorf("after the restart read %v", got)
	}
	btDepth(t, q, 0, "all read")
	q.Close()
	if m, _ := filepath.Glob(filepath.Join(dir, "*.cursor.dat")); len(m) > 0 {
		t.Errorf("cursor file left with nothing queued: %v", m)
	}

	// restart without reading the partly read batch
	btPutClose := func() {
		q, _ = openBatchBackend(t, dir, 1<<20)
		btPut(t, q, 20, 30)
		readN(t, q, 4) // m20..m23 handed out
		q.Close()
	}
	btPutClose()
	q, _ = openBatchBackend(t, dir, 1<<20)
	btDepth(t, q, 6, "skip pending")
	q.Close()
	q, _ = openBatchBackend(t, dir, 1<<20)
	btDepth(t, q, 6, "skip pending after a second restart")
	got = readCounted(t, q, 6)
	if strings.Join(got, " ") != strings.Join(names(24, 30), " ") {
		t.Errorf("read %v", got)
	}
	q.Close()
}

// Without a usable count in the cursor file the next start counts the
// messages from the record headers.
func TestBackendBatchRecount(t *testing.T) {
	dir := t.TempDir()
	size := int64(len(frame(record(0))))
	q, _ := openBatchBackend(t, dir, 20*size)
	for i := 0; i < 100; i += 10 {
		btPut(t, q, i, i+9)
		q.Put(record(i + 9))
	}
	q.Close()
	// the forwarder's read-ahead (from m0) is only in the cursor: without
	// it, reading resumes after it (first -1: some suffix)
	for _, tc := range []struct {
		name   string
		cursor []byte
		first  int
	}{
		{"zeroed", make([]byte, 2*cursorSlotV2), -1},
		{"v1 only", append(make([]byte, cursorSlot), encodeCursor(1, dqPos{0, 0})...), 0},
		{"stale to", encodeCursorState(1, cursorState{to: dqPos{0, 0}}), 0},
	} {
		name, cursor := tc.name, tc.cursor
		t.Run(name, func(t *testing.T) {
			d := crashCopy(t, dir)
			if err := os.WriteFile(dqFiles{d, "q"}.cursor(), cursor, 0600); err != nil {
				t.Fatal(err)
			}
			q2, l := openBatchBackend(t, d, 20*size)
			depth := q2.Depth()
			got := readCounted(t, q2, depth)
			first := tc.first
			if first < 0 && len(got) > 0 {
				first = btNums(got)[0]
			}
			if depth != int64(100-first) {
				t.Errorf("recounted depth %d, want %d", depth, 100-first)
			}
			if strings.Join(got, " ") != strings.Join(names(first, 100), " ") {
				t.Errorf("read %v; log:\n%s", got, l)
			}
			q2.Close()
		})
	}
}

// After a crash every message of a batch that was not finished comes
// again (at least once), none is lost, and the depth is what can be read.
func TestBackendBatchCrash(t *testing.T) {
	dir := t.TempDir()
	size := int64(len(frame(record(0))))
	q, _ := openBatchBackend(t, dir, 12*size) // a few batches per segment
	for i := 0; i < 200; i += 10 {
		btPut(t, q, i, i+7)
		q.Put(record(i + 7))
		btPut(t, q, i+8, i+10)
	}
	btDepth(t, q, 200, "after the puts")
	got, refs := readN(t, q, 120)
	if strings.Join(got, " ") != strings.Join(names(0, 120), " ") {
		t.Fatalf("read %v", got)
	}
	unfinished := map[int]bool{63: true, 64: true, 101: true}
	for i, r := range refs {
		if !unfinished[i] {
			r.release()
		}
	}
	waitCursor(t, q, func(st cursorState) bool { return st.pos.file > 0 }, "the cursor past segment 0")
	time.Sleep(3 * cursorPersistDelay)
	crashed := crashCopy(t, dir)
	// records put after the last cursor write are counted from the segment
	btPut(t, q, 200, 210)
	crashed2 := crashCopy(t, dir)
	q.Close()

	for _, tc := range []struct {
		dir   string
		total int
	}{{crashed, 200}, {crashed2, 210}} {
		q2, l := openBatchBackend(t, tc.dir, 12*size)
		depth := q2.Depth()
		after := readCounted(t, q2, depth)
		if int64(len(after)) != depth {
			t.Errorf("depth %d after the crash, read %d; log:\n%s", depth, len(after), l)
		}
		seen := map[string]bool{}
		for _, g := range after {
			seen[g] = true
		}
		// every message of the batches of m63/m64 (m60..m66) and m101
		// (m100..m106) again, then everything not read before
		for _, i := range []int{60, 61, 62, 63, 64, 65, 66, 100, 101, 102, 103, 104, 105, 106} {
			if !seen[fmt.Sprintf("m%d", i)] {
				t.Errorf("m%d not read again after the crash (read %v)", i, after)
			}
		}
		for i := 120; i < tc.total; i++ {
			if !seen[fmt.Sprintf("m%d", i)] {
				t.Errorf("m%d lost", i)
			}
		}
		if seen["m0"] || seen["m59"] {
			t.Errorf("messages before the oldest unfinished batch came again: %v", after[:10])
		}
		if !slices.IsSorted(btNums(after)) {
			t.Errorf("order after the crash: %v", after)
		}
		q2.Close()
		if bad := badFilesIn(tc.dir); len(bad) > 0 {
			t.Errorf(".bad files %v", bad)
		}
	}
	for i := range unfinished {
		refs[i].release()
	}
}

func btNums(bodies []string) []int {
	var n []int
	for _, b := range bodies {
		var i int
		fmt.Sscanf(b, "m%d", &i)
		n = append(n, i)
	}
	return n
}

// Empty and Delete with batch records queued and partly read.
func TestBackendBatchEmptyDelete(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 1<<20)
	btPut(t, q, 0, 10)
	btPut(t, q, 10, 20)
	readN(t, q, 3)
	if err := q.Empty(); err != nil {
		t.Fatal(err)
	}
	btDepth(t, q, 0, "after Empty")
	btPut(t, q, 40, 45)
	btDepth(t, q, 5, "5 put after Empty")
	got := readCounted(t, q, 5)
	if strings.Join(got, " ") != strings.Join(names(40, 45), " ") {
		t.Errorf("after Empty read %v", got)
	}
	btPut(t, q, 50, 55)
	q.Empty()
	q.Delete()
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) > 0 {
		t.Errorf("files after Empty+Delete: %v", m)
	}
}

// A batch larger than the record limit is written as several records.
func TestBackendBatchSplit(t *testing.T) {
	dir := t.TempDir()
	l := &recLog{}
	limit := int32(600)
	q := openDiskBackend("q", dir, 1<<20, rtMin, limit, 1, 50*time.Millisecond, l.logf)
	msgs := btMsgs(0, 40)
	q.control(fwdPause) // the forwarder reads ahead: count the records first
	if n, err := q.putMessages(msgs); n != 40 || err != nil {
		t.Fatalf("putMessages: %d %v", n, err)
	}
	recs := q.dq.Depth() // a record go-diskqueue has read but not sent yet still counts
	q.control(fwdResume)
	if recs < 3 || recs >= 40 {
		t.Errorf("%d records for 40 messages of ~%d bytes with a %d-byte limit", recs, len(record(20)), limit)
	}
	btDepth(t, q, 40, "split batch")
	got := readCounted(t, q, 40)
	if strings.Join(got, " ") != strings.Join(names(0, 40), " ") {
		t.Errorf("read %v", got)
	}
	q.Close()
}

// Random puts (single and batch), reads, finishes, clean restarts and
// crashes, as TestRecoverRandomCrashes.
func TestBackendBatchRandomCrashes(t *testing.T) {
	for _, seed := range []uint64{3, 11, 29} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { randomCrashes(t, seed, true) })
	}
}

// The forwarder keeps ReadChan's buffer filled: a consumer that starts
// late, or takes one message at a time with pauses, gets everything, and
// Depth counts the messages waiting in the buffer.
func TestBackendBatchBufferedReadChan(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 1<<20)
	for i := 0; i < 200; i += 20 {
		btPut(t, q, i, i+20)
	}
	time.Sleep(100 * time.Millisecond) // the buffer fills, the forwarder stalls
	if n := len(q.readChan); n != btReadChanBuffer {
		t.Errorf("%d messages in the buffer, want %d", n, btReadChanBuffer)
	}
	btDepth(t, q, 200, "buffer full, nothing taken")
	var got []string
	for i := 0; i < 30; i++ {
		g, refs := readN(t, q, 1)
		refs[0].release()
		got = append(got, g...)
		time.Sleep(time.Duration(i%4) * time.Millisecond)
	}
	btDepth(t, q, 170, "30 taken slowly")
	got = append(got, readCounted(t, q, 170)...)
	if strings.Join(got, " ") != strings.Join(names(0, 200), " ") {
		t.Errorf("read %v", got)
	}
	btDepth(t, q, 0, "all read")
	if !q.isEmpty() {
		t.Errorf("not empty")
	}
	q.Close()
}

// Without pinning (the cursor file cannot be kept), a clean shutdown puts
// the messages read ahead back at the end of the queue, and the next
// start counts the messages from the records.
func TestBackendBatchPutBackWithoutPinning(t *testing.T) {
	dir := t.TempDir()
	q, l := openBatchBackend(t, dir, 1<<20)
	btPut(t, q, 0, 10)
	btPut(t, q, 10, 30)
	got, refs := readN(t, q, 4)
	for _, r := range refs {
		r.release()
	}
	q.mu.Lock()
	q.disablePinningLocked(fmt.Errorf("test"))
	q.mu.Unlock()
	if !l.has("at-least-once after a crash is off") {
		t.Errorf("log:\n%s", l)
	}
	btPut(t, q, 30, 40) // written as single records now
	btDepth(t, q, 36, "before the shutdown")
	q.Close()
	q, _ = openBatchBackend(t, dir, 1<<20)
	btDepth(t, q, 36, "after the restart")
	got = readCounted(t, q, 36)
	nums := btNums(got)
	slices.Sort(nums)
	var want []int
	for i := 4; i < 40; i++ {
		want = append(want, i)
	}
	if !slices.Equal(nums, want) {
		t.Errorf("read %v", got)
	}
	q.Close()
}

// A consumer takes the forwarder's held messages directly once ReadChan's
// buffer is empty (diskBackend.takeHeld), never ahead of the buffer: the
// order stays, Depth counts every message not taken, and the records are
// finished when all their messages are.
func TestBackendTakeHeldKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 1<<20)
	btPut(t, q, 0, 100)
	btPut(t, q, 100, 300)
	waitFor(t, func() bool { return len(q.readChan) == btReadChanBuffer }, "the buffer filled")
	if b := q.takeHeld(); b != nil {
		t.Fatalf("takeHeld with a full buffer returned %q", bodyOf(t, b))
	}
	var got []string
	var refs []*diskRef
	direct := 0
	for len(got) < 300 {
		var b []byte
		select {
		case b = <-q.ReadChan():
		default:
			if b = q.takeHeld(); b != nil {
				direct++
			} else {
				select {
				case b = <-q.ReadChan():
				case <-time.After(5 * time.Second):
					t.Fatalf("stuck after %d messages", len(got))
				}
			}
		}
		got = append(got, bodyOf(t, b))
		refs = append(refs, q.claim(b, false))
		if len(got) == 150 {
			// go-diskqueue lowers its depth just after a hand-over
			waitFor(t, func() bool { return q.Depth() == 150 }, "depth 150 with 150 taken")
		}
	}
	if strings.Join(got, " ") != strings.Join(names(0, 300), " ") {
		t.Errorf("read out of order: %v", got)
	}
	if direct == 0 {
		t.Errorf("no message was taken directly")
	}
	t.Logf("%d of 300 taken directly", direct)
	btDepth(t, q, 0, "all taken")
	for _, r := range refs {
		r.release()
	}
	if !q.isEmpty() {
		t.Error("not empty after everything was taken")
	}
	q.Close()
	q2, _ := openBatchBackend(t, dir, 1<<20)
	btDepth(t, q2, 0, "after a restart, all finished")
	q2.Close()
}

// A consumer that refills (the channel pump: claim(b, true), takeHeld,
// then refill after each burst) is never left waiting while messages are
// held: it wakes the forwarder only when a record should be read, and
// moves held messages into ReadChan itself. Bursts of random size race
// the forwarder's hand-overs, records larger and smaller than fwdHoldMax.
func TestBackendRefillingConsumerNeverStalls(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 8<<20)
	const total = 12000
	for i := 0; i < total; {
		n := min(50+(i*7)%700, total-i) // 50..749 messages per record
		btPut(t, q, i, i+n)
		i += n
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var got []string
	var refs []*diskRef
	for len(got) < total {
		var b []byte
		select {
		case b = <-q.ReadChan():
		case <-time.After(5 * time.Second):
			t.Fatalf("stuck after %d of %d messages: %d held, %d in ReadChan", len(got), total, q.heldCount(), len(q.readChan))
		}
		burst := 1 + rng.IntN(64)
		for i := 0; ; i++ {
			got = append(got, bodyOf(t, b))
			refs = append(refs, q.claim(b, true))
			if i+1 == burst {
				break
			}
			select {
			case b = <-q.ReadChan():
			default:
				b = q.takeHeld()
			}
			if b == nil {
				break
			}
		}
		q.refill()
		if rng.IntN(8) == 0 {
			for _, r := range refs {
				r.release()
			}
			refs = refs[:0]
			runtime.Gosched()
		}
	}
	for _, r := range refs {
		r.release()
	}
	if strings.Join(got, " ") != strings.Join(names(0, total), " ") {
		t.Errorf("read out of order")
	}
	btDepth(t, q, 0, "all taken")
	q.Close()
}

// isEmpty (the topic's direct-delivery check) follows puts, reads, Empty
// and a restart with records queued.
func TestBackendIsEmptyCounts(t *testing.T) {
	dir := t.TempDir()
	q, _ := openBatchBackend(t, dir, 1<<20)
	if !q.isEmpty() {
		t.Fatal("a new queue is not empty")
	}
	btPut(t, q, 0, 5)
	q.Put(record(5))
	if q.isEmpty() {
		t.Error("empty with 6 messages queued")
	}
	got, refs := readN(t, q, 6)
	for _, r := range refs {
		r.release()
	}
	waitFor(t, q.isEmpty, "empty after reading everything "+strings.Join(got, " "))
	q.Put(record(6))
	q.Put(record(7))
	waitFor(t, func() bool { return len(q.readChan) == 2 }, "the two records forwarded")
	if q.isEmpty() {
		t.Error("empty with 2 messages in ReadChan")
	}
	if err := q.Empty(); err != nil {
		t.Fatal(err)
	}
	if !q.isEmpty() {
		t.Error("not empty after Empty")
	}
	q.Put(record(8))
	q.Close()
	q2, _ := openBatchBackend(t, dir, 1<<20)
	defer q2.Close()
	if q2.isEmpty() {
		t.Error("empty after a restart with a record queued")
	}
	_, refs2 := readN(t, q2, 1)
	refs2[0].release()
	waitFor(t, q2.isEmpty, "empty after reading the restart's record")
}
