package nsqd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nsqio/go-diskqueue"

	"github.com/ournsq/nsq/internal/lg"
)

// diskBackend wraps a go-diskqueue so that a message read from disk is not
// lost if nsqd dies before the message is finished (docs/robustness-crash.md).
//
// go-diskqueue moves its read position, persists it and deletes a segment
// it has read past as soon as a record is handed over. diskBackend keeps
// its own durable read position instead, the cursor: the position of the
// oldest record handed over whose message is not finished yet. It is stored
// in <name>.diskqueue.cursor.dat, and every segment at or after the cursor
// has a hard link <name>.diskqueue.NNNNNN.hold so that go-diskqueue's
// deletion does not take it away. After a crash, reconcileDiskQueue
// (backend_recover.go) moves go-diskqueue's read position back to the
// cursor: the unfinished messages are delivered again (at least once;
// the finished ones between them come again too).
//
// "Finished" is decided by the owner of the message (Message.ref): FIN, a
// copy written to another disk queue (a topic's message in its channels, a
// requeue), or a deliberate drop (empty, delete, sampling, write error).
//
// Goroutines and state: a forwarder goroutine is the only reader of
// go-diskqueue's ReadChan; it computes each record's position, registers
// it as pending and offers it on our own ReadChan (one record at most is
// held that way; Depth counts it). Put is serialised by wmu, which also
// guards the mirror of go-diskqueue's write position (used to link each new
// segment as soon as it exists). mu guards the pending records, the cursor
// file and the holds. Lock order: wmu before mu.
type diskBackend struct {
	dq              diskqueue.Interface
	files           dqFiles
	chk             recordCheck
	maxBytesPerFile int64
	logf            func(lg.LogLevel, string, ...interface{})

	readChan chan []byte
	holding  atomic.Bool // the forwarder holds a record (counted by Depth)
	depthReq chan chan int64
	ctl      chan fwdCtl
	fwdDone  chan struct{}

	wmu    sync.Mutex
	w      dqPos        // where go-diskqueue writes the next record
	wFile  atomic.Int64 // w.file, readable without wmu
	closed bool

	mu             sync.Mutex
	pinning        bool // false: plain go-diskqueue behaviour
	starting       bool // pinning, but the cursor file could not be made yet
	lastStart      time.Time
	next           dqPos    // position of the next record the forwarder receives
	nextFile       *os.File // segment next.file, opened through its hold
	pending        []pin    // records handed over, in read order; pending[head:] is live
	head           int
	base           uint64 // seq of pending[head]; base+live == nextSeq
	nextSeq        uint64
	byPtr          map[*byte]uint64
	cursorFile     *os.File
	cursorGen      uint64
	persisted      dqPos
	persistT       *time.Timer // runs persistLater
	persistPending bool        // persistT is armed
	holdFloor      int64       // segments below have no hold
	rbuf           []byte      // read-ahead of segment next.file from rbufOff (locate)
	rbufOff        int64
	dropped        int64 // pins given up because they were too old
	pinLimit       int64 // segments (maxPinnedBytes, minPinnedSegments)
}

type pin struct {
	pos  dqPos
	done bool
}

type fwdCtl struct {
	op    int
	reply chan []byte
}

const (
	fwdPause = iota
	fwdResume
	fwdStop
)

// maxPinnedBytes bounds what an unfinished message can keep on disk: a
// record pinned more than this (and more than minPinnedSegments segments)
// behind the reader is given up (it is then only in memory, as in NSQ), so
// that a forgotten or very long deferred message cannot hold every later
// segment.
const (
	maxPinnedBytes    = 1 << 30
	minPinnedSegments = 8
)

// openDiskBackend reconciles the queue's files (backend_recover.go) and
// opens it.
func openDiskBackend(name, dataPath string, maxBytesPerFile int64, minMsgSize, maxMsgSize int32,
	syncEvery int64, syncTimeout time.Duration, logf func(lg.LogLevel, string, ...interface{})) *diskBackend {
	return openDiskBackendOn(make(chan []byte), name, dataPath, maxBytesPerFile, minMsgSize, maxMsgSize,
		syncEvery, syncTimeout, logf)
}

// openDiskBackendOn is openDiskBackend delivering records on readChan (a
// lazily opened queue hands out its ReadChan before it exists).
func openDiskBackendOn(readChan chan []byte, name, dataPath string, maxBytesPerFile int64, minMsgSize, maxMsgSize int32,
	syncEvery int64, syncTimeout time.Duration, logf func(lg.LogLevel, string, ...interface{})) *diskBackend {
	q := &diskBackend{
		files:           dqFiles{dir: dataPath, name: name},
		chk:             recordCheck{min: minMsgSize, max: maxMsgSize},
		maxBytesPerFile: maxBytesPerFile,
		logf:            logf,
		readChan:        readChan,
		depthReq:        make(chan chan int64),
		ctl:             make(chan fwdCtl),
		fwdDone:         make(chan struct{}),
		byPtr:           make(map[*byte]uint64),
		pinning:         true,
		pinLimit:        max(int64(minPinnedSegments), maxPinnedBytes/max(maxBytesPerFile, 1)),
		nextSeq:         1,
		base:            1,
	}
	meta, rep, err := reconcileDiskQueue(q.files, q.chk)
	if err != nil {
		// go-diskqueue still opens the queue its own way; only the
		// crash guarantees are off
		logf(lg.ERROR, "DISKQUEUE(%s) recovery failed, at-least-once after a crash is off for it - %s", name, err)
		q.pinning = false
	} else if rep.changed {
		logf(lg.WARN, "DISKQUEUE(%s) recovered after an unclean shutdown: %s", name, joinNotes(rep.notes))
	}
	dqLogf := func(level diskqueue.LogLevel, f string, args ...interface{}) {
		logf(lg.LogLevel(level), f, args...)
	}
	q.dq = diskqueue.New(name, dataPath, maxBytesPerFile, minMsgSize, maxMsgSize, syncEvery, syncTimeout, dqLogf)
	q.w = meta.write
	q.wFile.Store(meta.write.file)
	q.next = meta.read
	q.persisted = meta.read
	q.holdFloor = meta.read.file
	if q.pinning {
		q.mu.Lock()
		if err := q.startPinningLocked(); err != nil {
			// e.g. the disk is full: try again before the first record
			// is written or read
			q.starting = true
			q.lastStart = time.Now()
			logf(lg.WARN, "DISKQUEUE(%s) cannot keep unfinished records across a crash yet - %s", name, err)
		}
		q.mu.Unlock()
	}
	go q.forward()
	return q
}

func joinNotes(notes []string) string {
	s := ""
	for i, n := range notes {
		if i > 0 {
			s += "; "
		}
		s += n
	}
	return s
}

// startPinningLocked links the segments from the read position to the
// write position and writes the cursor file. On failure it leaves nothing.
func (q *diskBackend) startPinningLocked() error {
	from, to := q.next.file, q.wFile.Load()
	undo := func(upto int64) {
		for f := from; f <= upto; f++ {
			os.Remove(q.files.hold(f))
		}
	}
	for f := from; f <= to; f++ {
		if err := q.linkHold(f); err != nil {
			undo(f)
			return err
		}
	}
	fh, err := os.OpenFile(q.files.cursor(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0600)
	if err == nil {
		_, err = fh.WriteAt(encodeCursor(1, q.next), cursorSlot)
		if err != nil {
			fh.Close()
			os.Remove(q.files.cursor())
		}
	}
	if err != nil {
		undo(to)
		return err
	}
	q.cursorFile = fh
	q.cursorGen = 1
	q.persisted = q.next
	q.holdFloor = from
	return nil
}

// retryStartLocked retries startPinningLocked at most once a second.
func (q *diskBackend) retryStartLocked(force bool) error {
	if !force && time.Since(q.lastStart) < time.Second {
		return errors.New("not retried yet")
	}
	q.lastStart = time.Now()
	if err := q.startPinningLocked(); err != nil {
		return err
	}
	q.starting = false
	q.logf(lg.INFO, "DISKQUEUE(%s) keeps unfinished records across a crash again", q.files.name)
	return nil
}

// linkHold makes the hold link of segment f. A segment that does not exist
// yet (go-diskqueue creates it at its first write) is not an error.
func (q *diskBackend) linkHold(f int64) error {
	seg, hold := q.files.segment(f), q.files.hold(f)
	err := os.Link(seg, hold)
	switch {
	case err == nil, errors.Is(err, os.ErrNotExist):
		if err != nil {
			if _, serr := os.Stat(seg); serr == nil {
				return err // the hold's directory is gone?
			}
		}
		return nil
	case errors.Is(err, os.ErrExist):
		a, errA := os.Stat(seg)
		b, errB := os.Stat(hold)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return nil
		}
		os.Remove(hold)
		return os.Link(seg, hold)
	}
	return err
}

// disablePinningLocked falls back to go-diskqueue's own behaviour.
func (q *diskBackend) disablePinningLocked(cause error) {
	if !q.pinning {
		return
	}
	q.logf(lg.ERROR, "DISKQUEUE(%s) cannot keep unfinished records across a crash, at-least-once after a crash is off for it - %s",
		q.files.name, cause)
	q.pinning = false
	q.dropPinsLocked()
}

// dropPinsLocked forgets every pending record and removes the cursor file
// and the holds.
func (q *diskBackend) dropPinsLocked() {
	if q.persistT != nil {
		q.persistT.Stop()
		q.persistPending = false
	}
	q.pending = nil
	q.head = 0
	q.base = q.nextSeq
	clear(q.byPtr)
	for f := q.holdFloor; f <= q.wFile.Load(); f++ {
		os.Remove(q.files.hold(f))
	}
	q.holdFloor = q.wFile.Load() + 1
	q.closeNextFile()
	if q.cursorFile != nil {
		q.cursorFile.Close()
		q.cursorFile = nil
		os.Remove(q.files.cursor())
	}
}

// ---------------------------------------------------------------------------
// cursor file: two 32-byte slots written alternately, the valid one with
// the higher generation wins
//
//	0  4  magic "NQc1"
//	4  8  generation
//	12 8  segment number
//	20 8  offset
//	28 4  CRC-32 (IEEE) of bytes 0..27

const cursorSlot = 32

var cursorMagic = [4]byte{'N', 'Q', 'c', '1'}

func encodeCursor(gen uint64, p dqPos) []byte {
	b := make([]byte, cursorSlot)
	copy(b, cursorMagic[:])
	binary.BigEndian.PutUint64(b[4:], gen)
	binary.BigEndian.PutUint64(b[12:], uint64(p.file))
	binary.BigEndian.PutUint64(b[20:], uint64(p.pos))
	binary.BigEndian.PutUint32(b[28:], crc32.ChecksumIEEE(b[:28]))
	return b
}

func readCursorFile(path string) (dqPos, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return dqPos{}, false
	}
	var best dqPos
	var bestGen uint64
	found := false
	for off := 0; off+cursorSlot <= len(b) && off < 2*cursorSlot; off += cursorSlot {
		s := b[off : off+cursorSlot]
		if [4]byte(s[:4]) != cursorMagic || binary.BigEndian.Uint32(s[28:]) != crc32.ChecksumIEEE(s[:28]) {
			continue
		}
		gen := binary.BigEndian.Uint64(s[4:])
		p := dqPos{int64(binary.BigEndian.Uint64(s[12:])), int64(binary.BigEndian.Uint64(s[20:]))}
		if p.file < 0 || p.pos < 0 {
			continue
		}
		if !found || gen > bestGen {
			best, bestGen, found = p, gen, true
		}
	}
	return best, found
}

// cursorLocked is the oldest unfinished record, or the next one to be read.
func (q *diskBackend) cursorLocked() dqPos {
	if q.head < len(q.pending) {
		return q.pending[q.head].pos
	}
	return q.next
}

// persistCursorLocked writes the cursor if it moved and removes the holds
// of the segments before it, after an fsync. Other writes are not synced:
// a cursor that is older than it could be after a power failure only means
// more messages delivered twice, while the segments it points to are still
// there (their holds go only after a synced cursor has moved past them).
func (q *diskBackend) persistCursorLocked() {
	if q.cursorFile == nil {
		return
	}
	c := q.cursorLocked()
	if c == q.persisted {
		return
	}
	q.cursorGen++
	off := int64(q.cursorGen%2) * cursorSlot
	if _, err := q.cursorFile.WriteAt(encodeCursor(q.cursorGen, c), off); err != nil {
		q.disablePinningLocked(fmt.Errorf("writing %s: %w", q.files.cursor(), err))
		return
	}
	q.persisted = c
	if c.file > q.holdFloor {
		if err := q.cursorFile.Sync(); err != nil {
			q.disablePinningLocked(fmt.Errorf("syncing %s: %w", q.files.cursor(), err))
			return
		}
	}
	for ; q.holdFloor < c.file; q.holdFloor++ {
		os.Remove(q.files.hold(q.holdFloor))
	}
}

// ---------------------------------------------------------------------------
// reading

// forward moves records from go-diskqueue to our ReadChan.
func (q *diskBackend) forward() {
	defer close(q.fwdDone)
	src := q.dq.ReadChan()
	var held []byte
	paused := false
	for {
		var in <-chan []byte
		var out chan []byte
		if held != nil {
			out = q.readChan
		} else if !paused {
			in = src
		}
		select {
		case b := <-in:
			q.received(b)
			held = b
			q.holding.Store(true)
		case out <- held:
			held = nil
			q.holding.Store(false)
		case r := <-q.depthReq:
			d := q.dq.Depth()
			if held != nil {
				d++
			}
			r <- d
		case c := <-q.ctl:
			switch c.op {
			case fwdPause:
				paused = true
				c.reply <- held
				held = nil
				q.holding.Store(false)
			case fwdResume:
				paused = false
				c.reply <- nil
			case fwdStop:
				c.reply <- held
				return
			}
		}
	}
}

func (q *diskBackend) control(op int) []byte {
	reply := make(chan []byte, 1)
	select {
	case q.ctl <- fwdCtl{op: op, reply: reply}:
	case <-q.fwdDone:
		return nil
	}
	held := <-reply
	if op == fwdStop {
		<-q.fwdDone
	}
	return held
}

// received registers a record the forwarder took from go-diskqueue.
func (q *diskBackend) received(b []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.pinning || len(b) == 0 {
		return
	}
	if q.starting {
		// nothing was read before: the read position is still known
		if err := q.retryStartLocked(true); err != nil {
			q.disablePinningLocked(err)
			return
		}
	}
	pos, err := q.locate(b)
	if err != nil {
		q.disablePinningLocked(err)
		return
	}
	seq := q.nextSeq
	q.nextSeq++
	q.pending = append(q.pending, pin{pos: pos})
	q.byPtr[unsafe.SliceData(b)] = seq

	// give up pins that hold too many segments
	limit := q.pinLimit
	moved := false
	for q.head < len(q.pending) && q.pending[q.head].pos.file+limit < q.next.file {
		if !q.pending[q.head].done {
			q.dropped++
			if q.dropped&(q.dropped-1) == 0 { // 1, 2, 4, 8, ...
				q.logf(lg.WARN, "DISKQUEUE(%s) %d unfinished messages were held more than %d segments behind the reader; no longer kept across a crash",
					q.files.name, q.dropped, limit)
			}
		}
		q.popLocked()
		moved = true
	}
	if moved {
		q.persistCursorLocked()
	}
}

// locate returns the position of record b that go-diskqueue has just
// handed over. go-diskqueue reads records one after the other and goes on
// with the next segment at the end of one (or when it gives up on a corrupt
// one and renames it *.bad). The record is where the previous one ended if
// the bytes there are its length and its first bytes; else it is at the
// start of a later segment. Segments are read through their hold links
// (go-diskqueue may delete a segment right after handing over its last
// record).
func (q *diskBackend) locate(b []byte) (dqPos, error) {
	l := int64(len(b))
	var wantBuf [4 + 16]byte
	want := wantBuf[:4+min(len(b), 16)]
	binary.BigEndian.PutUint32(want, uint32(l))
	copy(want[4:], b)
	for range 1 << 16 {
		if q.nextFile == nil {
			fh, err := os.Open(q.files.hold(q.next.file))
			if err != nil {
				fh, err = os.Open(q.files.segment(q.next.file))
			}
			if err == nil {
				q.nextFile = fh
			}
		}
		if q.nextFile != nil && q.recordAt(q.next.pos, want) {
			p := q.next
			q.next.pos += 4 + l
			return p, nil
		}
		// not here: this segment is done
		q.removeSpuriousBad(q.files.segment(q.next.file))
		if q.next.file >= q.wFile.Load() {
			return dqPos{}, fmt.Errorf("record of %d bytes not found after %s", l, q.next)
		}
		q.closeNextFile()
		q.next = dqPos{q.next.file + 1, 0}
	}
	return dqPos{}, fmt.Errorf("record of %d bytes not found after %s", l, q.next)
}

// locateReadAhead is how much of a segment locate reads at once: one
// pread(2) per ~70 records of 200 bytes instead of one per record.
const locateReadAhead = 16 << 10

// recordAt reports whether segment next.file holds want at off. Bytes come
// from a read-ahead buffer; a mismatch is checked once more against the
// file (a torn tail can be rewritten after it was buffered).
func (q *diskBackend) recordAt(off int64, want []byte) bool {
	end := off + int64(len(want))
	if q.rbuf != nil && off >= q.rbufOff && end <= q.rbufOff+int64(len(q.rbuf)) {
		if bytes.Equal(q.rbuf[off-q.rbufOff:end-q.rbufOff], want) {
			return true
		}
	}
	buf := q.rbuf[:cap(q.rbuf)]
	if buf == nil {
		buf = make([]byte, locateReadAhead)
	}
	n, _ := q.nextFile.ReadAt(buf, off)
	q.rbuf, q.rbufOff = buf[:n], off
	return n >= len(want) && bytes.Equal(q.rbuf[:len(want)], want)
}

func (q *diskBackend) closeNextFile() {
	q.rbuf = q.rbuf[:0]
	if q.nextFile != nil {
		q.nextFile.Close()
		q.nextFile = nil
	}
}

// removeSpuriousBad removes seg.bad if go-diskqueue renamed a segment we
// had read completely. go-diskqueue v1.1.0 does that when its reader has
// caught up with the end of the write segment and the writer then starts a
// new one: the next read hits EOF, which it takes for corruption.
func (q *diskBackend) removeSpuriousBad(seg string) {
	st, err := os.Stat(seg + ".bad")
	if err != nil || st.Size() != q.next.pos {
		return
	}
	if os.Remove(seg+".bad") == nil {
		q.logf(lg.INFO, "DISKQUEUE(%s) removed %s.bad: every record in it had been read (go-diskqueue reads the end of a finished write segment as corruption)",
			q.files.name, seg)
	}
}

func (q *diskBackend) popLocked() {
	q.head++
	q.base++
	if q.head == len(q.pending) {
		q.pending = q.pending[:0]
		q.head = 0
	} else if q.head >= 1024 && q.head*2 >= len(q.pending) {
		n := copy(q.pending, q.pending[q.head:])
		q.pending = q.pending[:n]
		q.head = 0
	}
}

// claim returns the reference of a record received from ReadChan (nil for
// a record that is not tracked).
func (q *diskBackend) claim(b []byte) *diskRef {
	if len(b) == 0 {
		return nil
	}
	q.mu.Lock()
	seq, ok := q.byPtr[unsafe.SliceData(b)]
	if ok {
		delete(q.byPtr, unsafe.SliceData(b))
	}
	q.mu.Unlock()
	if !ok {
		return nil
	}
	r := &diskRef{q: q, seq: seq}
	r.n.Store(1)
	return r
}

// cursorPersistDelay is how long a cursor move within one segment may wait
// before it is written. Writing it on every finished message cost a
// pwrite(2) per message; a cursor that is older than it could be only
// means a few more messages delivered twice after a crash (at most those
// finished in the last cursorPersistDelay). A move into a later segment is
// written at once, because that is what lets the old segment's hold go.
const cursorPersistDelay = 50 * time.Millisecond

// finish marks record seq finished and moves the cursor past every finished
// record at the front.
func (q *diskBackend) finish(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.pinning || seq < q.base || seq >= q.nextSeq {
		return
	}
	q.pending[q.head+int(seq-q.base)].done = true
	moved := false
	for q.head < len(q.pending) && q.pending[q.head].done {
		q.popLocked()
		moved = true
	}
	if !moved || q.cursorFile == nil {
		return
	}
	if q.cursorLocked().file > q.holdFloor {
		q.persistCursorLocked()
		return
	}
	if q.persistT == nil {
		q.persistT = time.AfterFunc(cursorPersistDelay, q.persistLater)
	} else if !q.persistPending {
		q.persistT.Reset(cursorPersistDelay)
	}
	q.persistPending = true
}

// persistLater writes a cursor move that finish left for later.
func (q *diskBackend) persistLater() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.persistPending = false
	q.persistCursorLocked()
}

// diskRef is a message's claim on the disk record it was read from; copies
// of the message for several channels share it. The record is finished
// when the last holder releases it.
type diskRef struct {
	q   *diskBackend
	seq uint64
	n   atomic.Int32
}

func (r *diskRef) retain() {
	if r != nil {
		r.n.Add(1)
	}
}

func (r *diskRef) release() {
	if r != nil && r.n.Add(-1) == 0 {
		r.q.finish(r.seq)
	}
}

// claimRecord is diskBackend.claim for any backend.
func claimRecord(bq BackendQueue, b []byte) *diskRef {
	switch q := bq.(type) {
	case *diskBackend:
		return q.claim(b)
	case *lazyDiskBackend:
		if dq := q.opened.Load(); dq != nil {
			return dq.claim(b)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// BackendQueue

// ReadChan is where records are read; claim each one (claimRecord).
func (q *diskBackend) ReadChan() <-chan []byte { return q.readChan }

// Put appends a record. The mirror of the write position follows
// go-diskqueue's rules so that a new segment gets its hold link before a
// later Put could let go-diskqueue delete it.
func (q *diskBackend) Put(data []byte) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return errors.New("exiting")
	}
	return q.putLocked(data)
}

func (q *diskBackend) putLocked(data []byte) error {
	l := int64(len(data))
	valid := q.chk.validLength(int32(min(l, 1<<31-1)))
	q.mu.Lock()
	if q.pinning && q.starting {
		q.retryStartLocked(false)
	}
	q.mu.Unlock()
	if valid && q.w.pos > 0 && q.w.pos+4+l > q.maxBytesPerFile {
		q.w = dqPos{q.w.file + 1, 0}
		q.wFile.Store(q.w.file)
	}
	err := q.dq.Put(data)
	if err != nil {
		if valid {
			// a short write leaves part of a record that the next write
			// will not fully cover; go-diskqueue reopens at q.w.pos
			if st, serr := os.Stat(q.files.segment(q.w.file)); serr == nil && st.Size() > q.w.pos {
				os.Truncate(q.files.segment(q.w.file), q.w.pos)
			}
		}
		return err
	}
	first := q.w.pos == 0
	q.w.pos += 4 + l
	if first {
		q.mu.Lock()
		if q.pinning && !q.starting {
			if err := q.linkHold(q.w.file); err != nil {
				q.disablePinningLocked(err)
			}
		}
		q.mu.Unlock()
	}
	return nil
}

// Depth counts the record the forwarder holds as well.
func (q *diskBackend) Depth() int64 {
	r := make(chan int64, 1)
	select {
	case q.depthReq <- r:
		return <-r
	case <-q.fwdDone:
		return q.dq.Depth()
	}
}

// isEmpty is a cheap Depth() == 0 (no round trip to the forwarder); it
// may be momentarily stale.
func (q *diskBackend) isEmpty() bool { return q.dq.Depth() == 0 && !q.holding.Load() }

// Close closes go-diskqueue (which persists its meta file). On a clean
// shutdown the channels have written their unfinished messages to disk
// themselves, so nothing stays pending except the record the forwarder
// holds: the cursor is left pointing at it, and the next start reads it
// again first (without a cursor, or without pinning, it is put back at the
// end of the queue instead).
func (q *diskBackend) Close() error {
	held := q.control(fwdStop)
	q.wmu.Lock()
	if q.closed {
		q.wmu.Unlock()
		return errors.New("exiting")
	}
	q.mu.Lock()
	keep := false
	if held != nil && q.pinning && q.cursorFile != nil {
		if seq, ok := q.byPtr[unsafe.SliceData(held)]; ok && seq >= q.base && seq < q.nextSeq {
			p := q.pending[q.head+int(seq-q.base)].pos
			q.pending, q.head, q.base = []pin{{pos: p}}, 0, q.nextSeq-1
			keep = true
		}
	}
	if !keep {
		q.pending, q.head, q.base = nil, 0, q.nextSeq
	}
	// from here on a crash must not rewind past what is pending now
	q.persistCursorLocked()
	if keep && q.cursorFile != nil {
		q.cursorFile.Sync()
	}
	q.mu.Unlock()
	if held != nil && !keep {
		if err := q.putLocked(held); err != nil {
			q.logf(lg.ERROR, "DISKQUEUE(%s) failed to put back a read-ahead record - %s", q.files.name, err)
		}
	}
	q.closed = true
	q.wmu.Unlock()

	err := q.dq.Close()
	q.mu.Lock()
	// go-diskqueue may have renamed the segment we had read to its end
	// while closing (its reader saw EOF after a roll)
	q.removeSpuriousBad(q.files.segment(q.next.file))
	if keep && q.cursorFile != nil {
		// the cursor and the holds from its segment on stay for the next
		// start (reconcileDiskQueue)
		if q.persistT != nil {
			q.persistT.Stop()
			q.persistPending = false
		}
		q.cursorFile.Close()
		q.cursorFile = nil
		q.closeNextFile()
	} else {
		q.dropPinsLocked()
	}
	q.mu.Unlock()
	return err
}

// Delete closes the queue without keeping anything of ours (the owner has
// emptied it).
func (q *diskBackend) Delete() error {
	q.control(fwdStop)
	q.wmu.Lock()
	q.closed = true
	q.wmu.Unlock()
	err := q.dq.Delete()
	q.mu.Lock()
	q.dropPinsLocked()
	q.mu.Unlock()
	return err
}

// Empty drops everything queued; go-diskqueue moves on to a new segment.
func (q *diskBackend) Empty() error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return errors.New("exiting")
	}
	q.control(fwdPause)
	defer q.control(fwdResume)
	err := q.dq.Empty()
	// go-diskqueue skips to the segment after the write segment whatever
	// deleting the files gave
	q.w = dqPos{q.w.file + 1, 0}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending, q.head, q.base = nil, 0, q.nextSeq
	clear(q.byPtr)
	q.next = q.w
	q.closeNextFile()
	oldW := q.wFile.Load()
	q.wFile.Store(q.w.file)
	if q.pinning {
		q.persistCursorLocked()
		if q.cursorFile != nil {
			q.cursorFile.Sync()
		}
		for f := q.holdFloor; f <= oldW; f++ {
			os.Remove(q.files.hold(f))
		}
		q.holdFloor = q.w.file
	}
	return err
}

// releaseRecord lets go of m's claim on its disk record (see diskBackend).
// Idempotent; only the message's current owner calls it.
func (m *Message) releaseRecord() {
	if r := m.ref; r != nil {
		m.ref = nil
		r.release()
	}
}
