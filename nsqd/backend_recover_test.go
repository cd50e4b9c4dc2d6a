package nsqd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-diskqueue"

	"github.com/ournsq/nsq/internal/lg"
)

// Crash recovery of the disk queues (backend_recover.go, backend_disk.go,
// docs/robustness-crash.md). A crash is simulated by copying the data path
// while the queue is open: the copy is what a SIGKILL leaves behind (the
// page cache survives, nothing is closed or synced).

const (
	rtMin = int32(legacyHeaderLength)
	rtMax = int32(1024) + diskHeaderLengthV1
)

type recLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *recLog) logf(level lg.LogLevel, f string, args ...interface{}) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(f, args...))
	l.mu.Unlock()
}

func (l *recLog) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func (l *recLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func openTestBackend(t *testing.T, dir string, maxBytes int64) (*diskBackend, *recLog) {
	t.Helper()
	l := &recLog{}
	q := openDiskBackend("q", dir, maxBytes, rtMin, rtMax, 1, 50*time.Millisecond, l.logf)
	return q, l
}

// record returns the disk record of message i: a v1 record whose body is
// "m<i>" padded to a length that varies with i.
func record(i int) []byte {
	m := &Message{Timestamp: time.Now().UnixNano(), Body: []byte(fmt.Sprintf("m%d/%s", i, strings.Repeat("x", i%37)))}
	copy(m.ID[:], fmt.Sprintf("%016x", i))
	return m.encodeDisk(0)
}

func bodyOf(t *testing.T, b []byte) string {
	t.Helper()
	m, err := decodeDiskMessage(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	s := string(m.Body)
	return s[:strings.IndexByte(s, '/')]
}

// frame is go-diskqueue's [int32 length][record].
func frame(rec []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(rec)))
	return append(b, rec...)
}

// readCounted reads the depth messages a queue reports (waiting up to 5 s
// for each: a loaded machine's fsyncs can stall reads longer than
// readAll's quiet period), then whatever else comes (readAll), claiming
// and releasing every one. It returns what it read, so that a depth that
// is wrong either way shows.
func readCounted(t *testing.T, q *diskBackend, depth int64) []string {
	t.Helper()
	got := readWhile(t, q, depth, 5*time.Second)
	return append(got, readAll(t, q)...)
}

// readN reads n records, claiming each; the refs are returned unreleased.
func readN(t *testing.T, q *diskBackend, n int) ([]string, []*diskRef) {
	t.Helper()
	var got []string
	var refs []*diskRef
	for i := 0; i < n; i++ {
		select {
		case b := <-q.ReadChan():
			refs = append(refs, q.claim(b, false))
			got = append(got, bodyOf(t, b))
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d records: %v", i, n, got)
		}
	}
	return got, refs
}

func expectNothing(t *testing.T, q *diskBackend) {
	t.Helper()
	select {
	case b := <-q.ReadChan():
		t.Fatalf("unexpected record %s", bodyOf(t, b))
	case <-time.After(100 * time.Millisecond):
	}
}

func names(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, fmt.Sprintf("m%d", i))
	}
	return s
}

func badFilesIn(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.bad"))
	return m
}

// crashCopy copies every file of src to a new directory: the state a
// SIGKILL at this moment leaves on disk. Hard links stay hard links.
func crashCopy(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	type copied struct {
		info os.FileInfo
		path string
	}
	var done []copied
	for _, e := range entries {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			continue // removed meanwhile
		}
		info, err := in.Stat()
		if err != nil {
			in.Close()
			continue
		}
		linked := false
		for _, c := range done {
			if os.SameFile(c.info, info) {
				os.Link(c.path, filepath.Join(dst, e.Name()))
				linked = true
				break
			}
		}
		if !linked {
			out, err := os.Create(filepath.Join(dst, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(out, in)
			out.Close()
			done = append(done, copied{info, filepath.Join(dst, e.Name())})
		}
		in.Close()
	}
	return dst
}

// writeSegment writes records [from, to) as segment n, optionally followed
// by the first part of one more record.
func writeSegment(t *testing.T, dir string, n int64, from, to int, torn int) {
	t.Helper()
	var b []byte
	for i := from; i < to; i++ {
		b = append(b, frame(record(i))...)
	}
	if torn > 0 {
		b = append(b, frame(record(to))[:torn]...)
	}
	if err := os.WriteFile(dqFiles{dir, "q"}.segment(n), b, 0600); err != nil {
		t.Fatal(err)
	}
}

func writeMeta(t *testing.T, dir string, depth, rf, rp, wf, wp int64) {
	t.Helper()
	s := fmt.Sprintf("%d\n%d,%d\n%d,%d\n", depth, rf, rp, wf, wp)
	if err := os.WriteFile(dqFiles{dir, "q"}.meta(), []byte(s), 0600); err != nil {
		t.Fatal(err)
	}
}

func segmentSize(t *testing.T, dir string, n int) int64 {
	t.Helper()
	var size int64
	for i := 0; i < n; i++ {
		size += int64(len(frame(record(i))))
	}
	return size
}

// Evidence: what go-diskqueue v1.1.0 itself does with the files a crash
// leaves. If this test fails after a go-diskqueue upgrade, the workarounds
// in backend_recover.go and backend_disk.go may no longer be needed.
func TestGoDiskqueueCrashEvidence(t *testing.T) {
	logf := func(l *recLog) diskqueue.AppLogFunc {
		return func(level diskqueue.LogLevel, f string, args ...interface{}) { l.logf(lg.LogLevel(level), f, args...) }
	}

	t.Run("stale meta and a torn record: depth off, segment renamed .bad", func(t *testing.T) {
		dir := t.TempDir()
		// 10 records synced, 3 more written after the last sync, then a
		// partial one
		writeSegment(t, dir, 0, 0, 13, 7)
		writeMeta(t, dir, 10, 0, 0, 0, segmentSize(t, dir, 10))
		l := &recLog{}
		dq := diskqueue.New("q", dir, 1<<20, rtMin, rtMax, 1, time.Second, logf(l))
		defer dq.Close()
		if d := dq.Depth(); d != 10 {
			t.Errorf("go-diskqueue depth %d, evidence expects 10 (it ignores records after the meta's write position)", d)
		}
		for i := 0; i < 13; i++ {
			select {
			case <-dq.ReadChan():
			case <-time.After(2 * time.Second):
				t.Fatalf("go-diskqueue read %d records", i)
			}
		}
		time.Sleep(100 * time.Millisecond)
		if len(badFilesIn(dir)) != 1 || !l.has("metadata writePos") || !l.has("negative depth") {
			t.Errorf("evidence expects a skip to a new file, a negative depth and one .bad file; bad %v, log:\n%s", badFilesIn(dir), l)
		}
	})

	t.Run("no meta file: new records overwrite the old ones", func(t *testing.T) {
		dir := t.TempDir()
		writeSegment(t, dir, 0, 0, 5, 0)
		l := &recLog{}
		dq := diskqueue.New("q", dir, 1<<20, rtMin, rtMax, 1, time.Second, logf(l))
		defer dq.Close()
		if err := dq.Put(record(100)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			select {
			case b := <-dq.ReadChan():
				got = append(got, bodyOf(t, b))
				continue
			case <-time.After(200 * time.Millisecond):
			}
			break
		}
		if strings.Join(got, " ") != "m100" {
			t.Errorf("go-diskqueue read %v, evidence expects only m100 (m0..m4 overwritten)", got)
		}
	})

	t.Run("reader at the end of the write segment when the writer rolls: .bad", func(t *testing.T) {
		dir := t.TempDir()
		l := &recLog{}
		size := int64(len(frame(record(0))))
		dq := diskqueue.New("q", dir, 2*size, rtMin, rtMax, 1, time.Second, logf(l))
		defer dq.Close()
		for i := 0; i < 3; i++ {
			dq.Put(record(0))
			<-dq.ReadChan()
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		if len(badFilesIn(dir)) != 1 {
			t.Errorf("evidence expects one .bad file, got %v; log:\n%s", badFilesIn(dir), l)
		}
	})
}

// Records written after the last sync are kept and counted, a torn record
// at the end is cut off, nothing is renamed .bad, new records go after.
func TestRecoverStaleMetaAndTornTail(t *testing.T) {
	dir := t.TempDir()
	writeSegment(t, dir, 0, 0, 13, 7)
	writeMeta(t, dir, 10, 0, 0, 0, segmentSize(t, dir, 10))
	q, l := openTestBackend(t, dir, 1<<20)
	if d := q.Depth(); d != 13 {
		t.Errorf("depth %d, want 13", d)
	}
	if !l.has("recovered after an unclean shutdown") || !l.has("cut 7 bytes") {
		t.Errorf("log:\n%s", l)
	}
	if err := q.Put(record(13)); err != nil {
		t.Fatal(err)
	}
	got, refs := readN(t, q, 14)
	if strings.Join(got, " ") != strings.Join(names(0, 14), " ") {
		t.Errorf("read %v", got)
	}
	for _, r := range refs {
		r.release()
	}
	expectNothing(t, q)
	if bad := badFilesIn(dir); len(bad) > 0 || l.has("negative depth") {
		t.Errorf(".bad files %v; log:\n%s", bad, l)
	}
	q.Close()
}

// A queue that never synced has segments and no meta file: the records are
// kept instead of being overwritten.
func TestRecoverWithoutMeta(t *testing.T) {
	dir := t.TempDir()
	writeSegment(t, dir, 0, 0, 5, 0)
	q, _ := openTestBackend(t, dir, 1<<20)
	if err := q.Put(record(5)); err != nil {
		t.Fatal(err)
	}
	got, _ := readN(t, q, 6)
	if strings.Join(got, " ") != strings.Join(names(0, 6), " ") {
		t.Errorf("read %v", got)
	}
	q.Close()
}

// Records read but not finished when the process dies are read again after
// the restart, even if go-diskqueue had already deleted their segment;
// finished ones before them are not.
func TestRecoverUnfinishedRecords(t *testing.T) {
	dir := t.TempDir()
	size := int64(len(frame(record(0))))
	q, _ := openTestBackend(t, dir, 3*size) // a few records per segment
	for i := 0; i < 20; i++ {
		if err := q.Put(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	got, refs := readN(t, q, 12)
	if strings.Join(got, " ") != strings.Join(names(0, 12), " ") {
		t.Fatalf("read %v", got)
	}
	for i, r := range refs {
		if i != 5 {
			r.release()
		}
	}
	time.Sleep(50 * time.Millisecond) // go-diskqueue persists its read position
	if _, err := os.Stat(q.files.segment(0)); err == nil {
		t.Fatalf("go-diskqueue kept segment 0; the test needs it deleted")
	}
	crashed := crashCopy(t, dir)
	q.Close()

	q2, l := openTestBackend(t, crashed, 3*size)
	if !l.has("restored segment") {
		t.Errorf("log:\n%s", l)
	}
	// m5 again, then what followed it (read before, finished or not, or
	// never read)
	if d := q2.Depth(); d != 15 {
		t.Errorf("depth %d, want 15", d)
	}
	got, refs = readN(t, q2, 15)
	if strings.Join(got, " ") != strings.Join(names(5, 20), " ") {
		t.Errorf("after the crash read %v", got)
	}
	for _, r := range refs {
		r.release()
	}
	expectNothing(t, q2)
	q2.Close()
	if bad := badFilesIn(crashed); len(bad) > 0 {
		t.Errorf(".bad files %v", bad)
	}
	// a clean close with nothing pending leaves none of our files
	for _, pat := range []string{"*.hold", "*.cursor.dat"} {
		if m, _ := filepath.Glob(filepath.Join(crashed, pat)); len(m) > 0 {
			t.Errorf("left behind: %v", m)
		}
	}
}

// The forwarder's read-ahead record is not lost or moved by a clean
// restart: the next start reads it first.
func TestCleanRestartKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	q, _ := openTestBackend(t, dir, 1<<20)
	for i := 0; i < 5; i++ {
		q.Put(record(i))
	}
	if d := q.Depth(); d != 5 {
		t.Errorf("depth %d, want 5", d)
	}
	q.Close()
	q, _ = openTestBackend(t, dir, 1<<20)
	if d := q.Depth(); d != 5 {
		t.Errorf("depth after restart %d, want 5", d)
	}
	got, refs := readN(t, q, 5)
	if strings.Join(got, " ") != strings.Join(names(0, 5), " ") {
		t.Errorf("read %v", got)
	}
	for _, r := range refs {
		r.release()
	}
	q.Close()
}

// go-diskqueue's .bad after the reader caught up with a segment end is
// removed, nothing is lost.
func TestNoSpuriousBadFile(t *testing.T) {
	dir := t.TempDir()
	size := int64(len(frame(record(0))))
	q, l := openTestBackend(t, dir, 2*size)
	for i := 0; i < 9; i++ {
		q.Put(record(0))
		_, refs := readN(t, q, 1)
		refs[0].release()
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if bad := badFilesIn(dir); len(bad) > 0 {
		t.Errorf(".bad files %v; log:\n%s", bad, l)
	}
	q.Close()
}

// Empty and Delete leave none of our files behind.
func TestEmptyDeleteRemoveHolds(t *testing.T) {
	dir := t.TempDir()
	size := int64(len(frame(record(0))))
	q, _ := openTestBackend(t, dir, 3*size)
	for i := 0; i < 10; i++ {
		q.Put(record(i))
	}
	readN(t, q, 4) // unfinished
	if m, _ := filepath.Glob(filepath.Join(dir, "*.hold")); len(m) == 0 {
		t.Errorf("no hold links while records are unfinished")
	}
	if err := q.Empty(); err != nil {
		t.Fatal(err)
	}
	if d := q.Depth(); d != 0 {
		t.Errorf("depth after Empty %d", d)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.hold")); len(m) > 0 {
		t.Errorf("holds after Empty: %v", m)
	}
	q.Put(record(42))
	got, _ := readN(t, q, 1)
	if got[0] != "m42" {
		t.Errorf("after Empty read %v", got)
	}
	q.Empty()
	q.Delete()
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) > 0 {
		t.Errorf("files after Empty+Delete: %v", m)
	}
}

// The cursor file survives a torn slot: the other one is used.
func TestCursorFileSlots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	b := append(encodeCursor(7, dqPos{3, 100}), encodeCursor(8, dqPos{4, 0})...)
	os.WriteFile(path, b, 0600)
	if p, ok := readCursorFile(path); !ok || p != (dqPos{4, 0}) {
		t.Errorf("got %v %v", p, ok)
	}
	b[cursorSlot+20] ^= 1 // corrupt the newer slot
	os.WriteFile(path, b, 0600)
	if p, ok := readCursorFile(path); !ok || p != (dqPos{3, 100}) {
		t.Errorf("with a torn slot got %v %v", p, ok)
	}
	os.WriteFile(path, bytes.Repeat([]byte{0}, 64), 0600)
	if _, ok := readCursorFile(path); ok {
		t.Errorf("zeros read as a cursor")
	}
}

// A message unfinished for too long does not keep every later segment: its
// pin is given up (it stays deliverable from memory, as in NSQ).
func TestPinLimit(t *testing.T) {
	dir := t.TempDir()
	size := int64(len(frame(record(0))))
	q, l := openTestBackend(t, dir, 2*size)
	q.mu.Lock()
	q.pinLimit = 2
	q.mu.Unlock()
	for i := 0; i < 12; i++ {
		q.Put(record(i))
	}
	_, refs := readN(t, q, 12)
	for _, r := range refs[1:] {
		r.release()
	}
	if !l.has("no longer kept across a crash") {
		t.Errorf("log:\n%s", l)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.hold")); len(m) > 3 {
		t.Errorf("holds kept: %v", m)
	}
	refs[0].release() // late, ignored
	q.Close()
}

// A read position at the very end of a finished segment (go-diskqueue's
// reader caught up with the writer before it rolled) is moved to the next
// segment, instead of go-diskqueue reading EOF and renaming it .bad. Also
// when the kill came after go-diskqueue renamed it and before the
// forwarder removed that .bad.
func TestRecoverReadAtSegmentEnd(t *testing.T) {
	for _, killedAfterRename := range []bool{false, true} {
		t.Run(fmt.Sprintf("renamed=%v", killedAfterRename), func(t *testing.T) {
			dir := t.TempDir()
			files := dqFiles{dir, "q"}
			writeSegment(t, dir, 0, 0, 3, 0)
			size0 := segmentSize(t, dir, 3)
			var seg1 []byte
			for i := 3; i < 5; i++ {
				seg1 = append(seg1, frame(record(i))...)
			}
			os.WriteFile(files.segment(1), seg1, 0600)
			writeMeta(t, dir, 2, 0, size0, 1, int64(len(seg1)))
			if killedAfterRename {
				os.Link(files.segment(0), files.hold(0))
				os.Rename(files.segment(0), files.segment(0)+".bad")
				os.WriteFile(files.cursor(), append(make([]byte, cursorSlot), encodeCursor(1, dqPos{0, size0})...), 0600)
			}
			q, l := openTestBackend(t, dir, 1<<20)
			if d := q.Depth(); d != 2 {
				t.Errorf("depth %d, want 2", d)
			}
			got, refs := readN(t, q, 2)
			if strings.Join(got, " ") != "m3 m4" {
				t.Errorf("read %v", got)
			}
			for _, r := range refs {
				r.release()
			}
			expectNothing(t, q)
			q.Close()
			if m, _ := filepath.Glob(filepath.Join(dir, "*.bad")); len(m) > 0 {
				t.Errorf(".bad files %v; log:\n%s", m, l)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*.hold")); len(m) > 0 {
				t.Errorf("holds left %v", m)
			}
		})
	}
}

// Random puts, reads, finishes, clean restarts and crashes (a copy of the
// data path taken at a random moment): after a clean restart the depth is
// unchanged; after a crash every unfinished record is read again, nothing
// put and not yet read is lost, the depth is what can be read, and no
// segment ends up .bad. TestBackendBatchRandomCrashes runs the same with
// MPUB batch records mixed in.
func TestRecoverRandomCrashes(t *testing.T) {
	for _, seed := range []uint64{1, 7} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { randomCrashes(t, seed, false) })
	}
}

func randomCrashes(t *testing.T, seed uint64, batches bool) {
	stream, open, segRecords := uint64(2), openTestBackend, int64(4)
	if batches {
		stream, open, segRecords = 5, openBatchBackend, 8
	}
	rng := rand.New(rand.NewPCG(seed, stream))
	dir := t.TempDir()
	size := int64(len(frame(record(40))))
	maxBytes := segRecords * size
	q, _ := open(t, dir, maxBytes)
	next := 0
	unfinished := map[string]*diskRef{}
	queued := 0 // put and not yet read
	for step := 0; step < 300; step++ {
		switch op := rng.IntN(10); {
		case batches && op < 2:
			if err := q.Put(record(next)); err != nil {
				t.Fatal(err)
			}
			next++
			queued++
		case batches && op < 4:
			n := 2 + rng.IntN(12)
			btPut(t, q, next, next+n)
			next += n
			queued += n
		case op < 4:
			for n := rng.IntN(5); n >= 0; n-- {
				if err := q.Put(record(next)); err != nil {
					t.Fatal(err)
				}
				next++
				queued++
			}
		case op < 7 && queued > 0:
			got, refs := readN(t, q, 1+rng.IntN(queued))
			queued -= len(got)
			for i, g := range got {
				unfinished[g] = refs[i]
			}
		case op < 9:
			for g, r := range unfinished {
				if rng.IntN(2) == 0 {
					r.release()
					delete(unfinished, g)
				}
			}
		case rng.IntN(3) == 0:
			// clean restart: the owners would have written their
			// unfinished messages to disk themselves
			q.Close()
			clear(unfinished)
			q, _ = open(t, dir, maxBytes)
			if d := q.Depth(); d != int64(queued) {
				t.Errorf("step %d: depth %d after a clean restart, want %d", step, d, queued)
			}
		default:
			if batches {
				// sometimes after the delayed cursor write, sometimes before
				time.Sleep(time.Duration(rng.IntN(2)) * 2 * cursorPersistDelay)
			}
			crashed := crashCopy(t, dir)
			q2, l := open(t, crashed, maxBytes)
			depth := q2.Depth()
			got := readCounted(t, q2, depth)
			if int64(len(got)) != depth {
				t.Errorf("step %d: depth %d after the crash, read %d; log:\n%s", step, depth, len(got), l)
			}
			seen := map[string]bool{}
			for _, g := range got {
				seen[g] = true
			}
			for g := range unfinished {
				if !seen[g] {
					t.Errorf("step %d: unfinished %s not read again after the crash (read %v)", step, g, got)
				}
			}
			if len(got) < queued {
				t.Errorf("step %d: %d read after the crash, %d were queued", step, len(got), queued)
			}
			q2.Close()
			if bad := badFilesIn(crashed); len(bad) > 0 {
				t.Errorf("step %d: .bad files after the crash %v", step, bad)
			}
		}
	}
	for _, r := range unfinished {
		r.release()
	}
	btDepth(t, q, int64(queued), "at the end")
	if queued > 0 {
		_, refs := readN(t, q, queued)
		for _, r := range refs {
			r.release()
		}
	}
	expectNothing(t, q)
	q.Close()
	if bad := badFilesIn(dir); len(bad) > 0 {
		t.Errorf(".bad files at the end: %v", bad)
	}
}

// The cursor can be ahead of go-diskqueue's last synced read position,
// whose segment go-diskqueue deleted meanwhile: the depth is then counted
// afresh, not derived from the stale meta.
func TestRecoverCursorAheadOfDeletedSegment(t *testing.T) {
	dir := t.TempDir()
	files := dqFiles{dir, "q"}
	// segment 0 (records 0..2) was read and deleted; segment 1 has 3..5
	var seg1 []byte
	for i := 3; i < 6; i++ {
		seg1 = append(seg1, frame(record(i))...)
	}
	os.WriteFile(files.segment(1), seg1, 0600)
	// meta synced while the reader was after record 0: depth 5
	writeMeta(t, dir, 5, 0, int64(len(frame(record(0)))), 1, int64(len(seg1)))
	// the cursor says records up to 3 are finished
	p := dqPos{1, int64(len(frame(record(3))))}
	os.WriteFile(files.cursor(), append(make([]byte, cursorSlot), encodeCursor(1, p)...), 0600)
	q, l := openTestBackend(t, dir, 1<<20)
	if d := q.Depth(); d != 2 {
		t.Errorf("depth %d, want 2; log:\n%s", d, l)
	}
	got, refs := readN(t, q, 2)
	if strings.Join(got, " ") != "m4 m5" {
		t.Errorf("read %v", got)
	}
	for _, r := range refs {
		r.release()
	}
	expectNothing(t, q)
	q.Close()
}
