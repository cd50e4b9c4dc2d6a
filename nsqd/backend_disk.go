package nsqd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
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
// it as pending and offers its messages on our own ReadChan: the record
// itself, or one by one the embedded records of a batch record
// (message_batch.go), each a sub-slice of it. The messages of the records
// it has received (up to fwdHoldMax, whole records) are held that way,
// under hmu, and a consumer may take them directly (takeHeld); Depth
// counts them. Put is serialised by wmu,
// which also guards the mirror of go-diskqueue's write position (used to
// link each new segment as soon as it exists). mu guards the pending
// records, the cursor file and the holds. Lock order: wmu before mu.
//
// Messages, not records: go-diskqueue counts records, a batch record holds
// several messages. extraQ is what the batch records in go-diskqueue add
// to its count (the sum of count-1), extraPending the same for the pending
// records. Both are written to the cursor file with the write position
// they are valid for, so that crash recovery can count the messages
// without reading the whole queue (backend_recover.go). A batch record is
// finished when all its messages are; after a crash all of them come
// again.
type diskBackend struct {
	dq              diskqueue.Interface
	files           dqFiles
	chk             recordCheck
	maxBytesPerFile int64
	logf            func(lg.LogLevel, string, ...interface{})

	readChan chan []byte
	holding  atomic.Bool // the forwarder holds messages (counted by Depth)
	// spaceWait: the forwarder waits for ReadChan's buffer to be half
	// empty; claim signals space then (see forward). heldFull: it
	// also waits for held to drop below fwdHoldMax before it reads the
	// next record; refill signals space then.
	spaceWait atomic.Bool
	heldFull  atomic.Bool
	space     chan struct{}
	// hmu guards held: messages of the records received, in order, not
	// in ReadChan yet; held[hhead:] are live (see forward)
	hmu      sync.Mutex
	held     [][]byte
	hhead    int
	extraQ   atomic.Int64 // messages - records of the batch records in go-diskqueue; changed under mu
	skipQ    atomic.Int64 // messages of the first record already delivered (skipN until it is read)
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
	next           dqPos // position of the next record the forwarder receives
	wClaim         dqPos // end of the last record Put (or being Put)
	extraPending   int64 // messages - records of pending[head:]
	skipAt         dqPos // a clean shutdown had delivered the first skipN
	skipN          int64 // messages of the record at skipAt already
	persistedSt    cursorState
	nextFile       *os.File // segment next.file, opened through its hold
	pending        []pin    // records handed over, in read order; pending[head:] is live
	head           int
	base           uint64 // seq of pending[head]; base+live == nextSeq
	nextSeq        uint64
	claimMu        sync.Mutex // guards unclaimed; taken after mu
	unclaimed      claimList  // records with messages handed out and not claimed yet
	cursorFile     *os.File
	cursorGen      uint64
	persistT       *time.Timer // runs persistLater
	persistPending bool        // persistT is armed
	holdFloor      int64       // segments below have no hold
	rbuf           []byte      // read-ahead of segment next.file from rbufOff (locate)
	encBuf         []byte      // putMessages' encoding buffer (under wmu)
	rbufOff        int64
	dropped        int64 // pins given up because they were too old
	pinLimit       int64 // segments (maxPinnedBytes, minPinnedSegments)
}

type pin struct {
	pos   dqPos
	ref   *diskRef // its messages' claim; the record is done when it is released
	extra int32    // messages - 1
	done  bool
}

type fwdCtl struct {
	op    int
	reply chan [][]byte
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
		space:           make(chan struct{}, 1),
		ctl:             make(chan fwdCtl),
		fwdDone:         make(chan struct{}),
		pinning:         true,
		pinLimit:        max(int64(minPinnedSegments), maxPinnedBytes/max(maxBytesPerFile, 1)),
		nextSeq:         1,
		base:            1,
	}
	meta, mc, rep, err := reconcileDiskQueue(q.files, q.chk)
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
	q.wClaim = meta.write
	q.holdFloor = meta.read.file
	q.extraQ.Store(mc.extra)
	if q.pinning && mc.skipN > 0 {
		q.skipAt, q.skipN = meta.read, mc.skipN
		q.skipQ.Store(mc.skipN)
	}
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
	st := q.stateLocked()
	if err == nil {
		_, err = fh.WriteAt(encodeCursorState(1, st), cursorSlotV2)
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
	q.persistedSt = st
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
	counted := q.cursorFile != nil && q.extraQ.Load()+q.extraPending != 0
	q.dropPinsLocked()
	if counted {
		// no cursor file would tell the next start that there are no
		// batch records; an invalid one makes it count them
		os.WriteFile(q.files.cursor(), make([]byte, 2*cursorSlotV2), 0600)
	}
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
	q.extraPending = 0
	q.claimMu.Lock()
	q.unclaimed.reset()
	q.claimMu.Unlock()
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
// cursor file: two slots written alternately, the valid one with the
// higher generation wins. Version 2 (written since batch records exist),
// two 64-byte slots:
//
//	0  4  magic "NQc2"
//	4  8  generation
//	12 8  cursor: segment number
//	20 8  cursor: offset
//	28 8  write end: segment number
//	36 8  write end: offset
//	44 8  extra: messages minus records from the cursor to the write end
//	52 4  skip: messages of the record at the cursor that need not come
//	      again (written by a clean shutdown that had delivered them)
//	56 4  CRC-32 (IEEE) of bytes 0..55
//	60 4  zero
//
// Version 1 (still read): two 32-byte slots, magic "NQc1", generation,
// cursor, CRC-32 of bytes 0..27 at 28. Without a version-2 slot the
// messages are counted from the records (backend_recover.go).

const (
	cursorSlot   = 32
	cursorSlotV2 = 64
)

var (
	cursorMagic   = [4]byte{'N', 'Q', 'c', '1'}
	cursorMagicV2 = [4]byte{'N', 'Q', 'c', '2'}
)

// cursorState is what a version-2 cursor slot holds.
type cursorState struct {
	pos, to dqPos
	extra   int64
	skip    int64
}

func encodeCursor(gen uint64, p dqPos) []byte {
	b := make([]byte, cursorSlot)
	copy(b, cursorMagic[:])
	binary.BigEndian.PutUint64(b[4:], gen)
	binary.BigEndian.PutUint64(b[12:], uint64(p.file))
	binary.BigEndian.PutUint64(b[20:], uint64(p.pos))
	binary.BigEndian.PutUint32(b[28:], crc32.ChecksumIEEE(b[:28]))
	return b
}

func encodeCursorState(gen uint64, st cursorState) []byte {
	b := make([]byte, cursorSlotV2)
	copy(b, cursorMagicV2[:])
	binary.BigEndian.PutUint64(b[4:], gen)
	binary.BigEndian.PutUint64(b[12:], uint64(st.pos.file))
	binary.BigEndian.PutUint64(b[20:], uint64(st.pos.pos))
	binary.BigEndian.PutUint64(b[28:], uint64(st.to.file))
	binary.BigEndian.PutUint64(b[36:], uint64(st.to.pos))
	binary.BigEndian.PutUint64(b[44:], uint64(st.extra))
	binary.BigEndian.PutUint32(b[52:], uint32(st.skip))
	binary.BigEndian.PutUint32(b[56:], crc32.ChecksumIEEE(b[:56]))
	return b
}

func readCursorFile(path string) (dqPos, bool) {
	st, _, ok := readCursorState(path)
	return st.pos, ok
}

// readCursorState reads the cursor file; counted says the state is a
// version-2 one (extra, to and skip are valid).
func readCursorState(path string) (st cursorState, counted, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return st, false, false
	}
	var bestGen uint64
	for off := 0; off+cursorSlotV2 <= len(b) && off < 2*cursorSlotV2; off += cursorSlotV2 {
		s := b[off : off+cursorSlotV2]
		if [4]byte(s[:4]) != cursorMagicV2 || binary.BigEndian.Uint32(s[56:]) != crc32.ChecksumIEEE(s[:56]) {
			continue
		}
		gen := binary.BigEndian.Uint64(s[4:])
		c := cursorState{
			pos:   dqPos{int64(binary.BigEndian.Uint64(s[12:])), int64(binary.BigEndian.Uint64(s[20:]))},
			to:    dqPos{int64(binary.BigEndian.Uint64(s[28:])), int64(binary.BigEndian.Uint64(s[36:]))},
			extra: int64(binary.BigEndian.Uint64(s[44:])),
			skip:  int64(binary.BigEndian.Uint32(s[52:])),
		}
		if c.pos.file < 0 || c.pos.pos < 0 || c.to.less(c.pos) || c.extra < 0 {
			continue
		}
		if !ok || gen > bestGen {
			st, bestGen, ok = c, gen, true
		}
	}
	if ok {
		return st, true, true
	}
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
		if !ok || gen > bestGen {
			st, bestGen, ok = cursorState{pos: p}, gen, true
		}
	}
	return st, false, ok
}

// cursorLocked is the oldest unfinished record, or the next one to be read.
func (q *diskBackend) cursorLocked() dqPos {
	if q.head < len(q.pending) {
		return q.pending[q.head].pos
	}
	return q.next
}

// stateLocked is what the cursor file should say now.
func (q *diskBackend) stateLocked() cursorState {
	c := q.cursorLocked()
	st := cursorState{pos: c, to: q.wClaim, extra: q.extraPending + q.extraQ.Load()}
	if c == q.skipAt {
		st.skip = q.skipN
	}
	return st
}

// persistCursorLocked writes the cursor state if it changed and removes
// the holds of the segments before the cursor, after an fsync. Other
// writes are not synced: a cursor that is older than it could be after a
// power failure only means more messages delivered twice, while the
// segments it points to are still there (their holds go only after a
// synced cursor has moved past them); a stale write end or count only
// means more records to count at the next start.
func (q *diskBackend) persistCursorLocked() {
	if q.cursorFile == nil {
		return
	}
	st := q.stateLocked()
	if st == q.persistedSt {
		return
	}
	q.cursorGen++
	off := int64(q.cursorGen%2) * cursorSlotV2
	if _, err := q.cursorFile.WriteAt(encodeCursorState(q.cursorGen, st), off); err != nil {
		q.disablePinningLocked(fmt.Errorf("writing %s: %w", q.files.cursor(), err))
		return
	}
	q.persistedSt = st
	c := st.pos
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

// persistSoonLocked has the cursor state written within
// cursorPersistDelay.
func (q *diskBackend) persistSoonLocked() {
	if q.cursorFile == nil || q.persistPending {
		return
	}
	if q.persistT == nil {
		q.persistT = time.AfterFunc(cursorPersistDelay, q.persistLater)
	} else {
		q.persistT.Reset(cursorPersistDelay)
	}
	q.persistPending = true
}

// ---------------------------------------------------------------------------
// reading

// forward moves records from go-diskqueue to our ReadChan, the messages
// of a batch record one by one. ReadChan is buffered (readChanBuffer):
// the forwarder fills the buffer without blocking, so that a consumer
// takes message after message without waiting for the forwarder to be
// scheduled in between.
//
// A drain measured the consumer's pump woken 17k times a second to find
// the buffer empty while the forwarder still held most of a record: the
// forwarder waits its turn for a CPU after every wake-up. So the messages
// not in the buffer yet (held, guarded by hmu) can be taken by a consumer
// directly once the buffer is empty (takeHeld); the forwarder keeps up to
// fwdHoldMax messages (the next record is read while one is consumed);
// and while the buffer is full it does not block on a send (each receive
// would wake it) but waits until the buffer is half empty, signalled by
// the consumers' claim. With an unbuffered ReadChan (tests) it blocks on
// the send and nothing is taken directly.
func (q *diskBackend) forward() {
	defer close(q.fwdDone)
	src := q.dq.ReadChan()
	var scratch [][]byte // received's result, before it joins held
	paused := false
	for {
		n := q.fill()
		var in <-chan []byte
		var space chan struct{}
		var out chan []byte
		var next []byte
		if !paused && n < fwdHoldMax {
			in = src
		}
		if n > 0 && cap(q.readChan) == 0 {
			q.hmu.Lock()
			out, next = q.readChan, q.held[q.hhead]
			q.hmu.Unlock()
		} else if n > 0 {
			// the buffer is full: wait for half of it (or, holding
			// fwdHoldMax, for room to read a record), unless a
			// consumer made room before it could see the flags
			full := n >= fwdHoldMax
			q.heldFull.Store(full)
			q.spaceWait.Store(true)
			if len(q.readChan) <= cap(q.readChan)/2 || full && q.heldCount() < fwdHoldMax {
				q.spaceWait.Store(false)
				continue
			}
			space = q.space
		}
		select {
		case b := <-in:
			q.holding.Store(true)
			scratch = q.received(b, scratch[:0])
			q.hmu.Lock()
			if q.hhead > 0 {
				k := copy(q.held, q.held[q.hhead:])
				clear(q.held[k:])
				q.held, q.hhead = q.held[:k], 0
			}
			q.held = append(q.held, scratch...)
			// again: a consumer that emptied the old held messages
			// meanwhile cleared it
			q.holding.Store(len(q.held) > 0)
			q.hmu.Unlock()
			clear(scratch)
		case <-space:
			q.spaceWait.Store(false)
		case out <- next:
			q.hmu.Lock()
			q.held[q.hhead] = nil
			q.hhead++
			q.hmu.Unlock()
		case r := <-q.depthReq:
			q.hmu.Lock()
			held := len(q.held) - q.hhead + len(q.readChan)
			q.hmu.Unlock()
			r <- q.depthWith(int64(held))
		case c := <-q.ctl:
			switch c.op {
			case fwdPause:
				paused = true
				c.reply <- q.takeBack()
				q.spaceWait.Store(false)
			case fwdResume:
				paused = false
				c.reply <- nil
			case fwdStop:
				c.reply <- q.takeBack()
				return
			}
		}
	}
}

// fwdHoldMax is how many messages the forwarder holds before it stops
// reading records: a record of an MPUB of 200 and the start of the next.
const fwdHoldMax = 256

func (q *diskBackend) heldCount() int {
	q.hmu.Lock()
	defer q.hmu.Unlock()
	return len(q.held) - q.hhead
}

// refill is fill done by a consumer that took messages with claim(b,
// true): at the end of its burst it moves held messages into ReadChan's
// buffer itself, so that the next one finds them there, and wakes the
// forwarder only once it should read the next record. A drain had the
// forwarder woken every 16 messages to refill the buffer, and waiting
// for the consumer's CPU for most of its wake-ups (it runs on the P
// that woke it).
func (q *diskBackend) refill() {
	if cap(q.readChan) == 0 {
		return
	}
	if n := q.fill(); n < fwdHoldMax && q.heldFull.Load() && q.spaceWait.Load() {
		select {
		case q.space <- struct{}{}:
		default:
		}
	}
}

// fill moves held messages into ReadChan's buffer without blocking and
// returns how many are still held.
func (q *diskBackend) fill() int {
	q.hmu.Lock()
	defer q.hmu.Unlock()
	for q.hhead < len(q.held) {
		select {
		case q.readChan <- q.held[q.hhead]:
			q.held[q.hhead] = nil
			q.hhead++
			continue
		default:
		}
		break
	}
	n := len(q.held) - q.hhead
	if n == 0 {
		q.held, q.hhead = q.held[:0], 0
		q.holding.Store(false)
	}
	return n
}

// takeHeld returns the next held message if ReadChan's buffer is empty
// (it holds older messages), else nil. The caller treats it as received
// from ReadChan (claim it).
func (q *diskBackend) takeHeld() []byte {
	if cap(q.readChan) == 0 || len(q.readChan) > 0 {
		return nil
	}
	q.hmu.Lock()
	defer q.hmu.Unlock()
	if q.hhead == len(q.held) || len(q.readChan) > 0 {
		return nil // only the forwarder adds to the buffer, under hmu
	}
	b := q.held[q.hhead]
	q.held[q.hhead] = nil
	q.hhead++
	if q.hhead == len(q.held) {
		q.held, q.hhead = q.held[:0], 0
		q.holding.Store(false)
	}
	return b
}

// diskOf is the open diskBackend behind bq (nil where there is none).
func diskOf(bq BackendQueue) *diskBackend {
	switch q := bq.(type) {
	case *diskBackend:
		return q
	case *lazyDiskBackend:
		return q.opened.Load()
	case *writeBehindBackend:
		return diskOf(q.inner)
	}
	return nil
}

// takeHeldFrom is takeHeld for any backend (nil where there is none).
func takeHeldFrom(bq BackendQueue) []byte {
	if q := diskOf(bq); q != nil {
		return q.takeHeld()
	}
	return nil
}

// refillFrom is refill for any backend.
func refillFrom(bq BackendQueue) {
	if q := diskOf(bq); q != nil {
		q.refill()
	}
}

// takeBack returns the messages waiting in ReadChan's buffer (which
// nobody takes any more) followed by the held ones, in order, and
// empties both.
func (q *diskBackend) takeBack() [][]byte {
	q.hmu.Lock()
	defer q.hmu.Unlock()
	var all [][]byte
	for len(q.readChan) > 0 {
		select {
		case b := <-q.readChan:
			all = append(all, b)
		default:
		}
	}
	all = append(all, q.held[q.hhead:]...)
	q.held, q.hhead = nil, 0
	q.holding.Store(false)
	return all
}

// depthWith is the number of messages queued: go-diskqueue's records, what
// its batch records hold beyond one each, and held messages.
func (q *diskBackend) depthWith(held int64) int64 {
	records := q.dq.Depth()
	d := records + held - q.skipQ.Load()
	if e := q.extraQ.Load(); e > 0 && records > 0 {
		d += e
	}
	return max(d, 0)
}

func (q *diskBackend) control(op int) [][]byte {
	reply := make(chan [][]byte, 1)
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

// received registers a record the forwarder took from go-diskqueue and
// returns its messages, appended to dst: the record itself, or the
// embedded records of a batch (a batch that does not split is handed out
// whole; its consumer cannot decode it and drops it, as any corrupt
// record).
func (q *diskBackend) received(b []byte, dst [][]byte) [][]byte {
	msgs := dst
	extra := int64(0)
	if len(b) > 0 && b[0] == diskFormatBatch {
		extra = recordMessages(b) - 1
		var err error
		if msgs, err = splitDiskBatch(b, dst); err != nil {
			q.logf(lg.ERROR, "DISKQUEUE(%s) %s", q.files.name, err)
			msgs = append(dst, b)
		}
	} else {
		msgs = append(dst, b)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if extra != 0 {
		q.extraQ.Add(-extra)
	}
	skip := q.skipQ.Load() > 0
	if skip {
		q.skipQ.Store(0)
	}
	if !q.pinning || len(b) == 0 {
		return msgs
	}
	if q.starting {
		// nothing was read before: the read position is still known
		if err := q.retryStartLocked(true); err != nil {
			q.disablePinningLocked(err)
			return msgs
		}
	}
	pos, err := q.locate(b)
	if err != nil {
		q.disablePinningLocked(err)
		return msgs
	}
	if q.next == q.wClaim && q.extraQ.Load() != 0 {
		// every record written has been read: nothing is left to count
		// (go-diskqueue skipped a corrupt segment, say)
		q.extraQ.Store(0)
	}
	if skip {
		if pos == q.skipAt && q.skipN < int64(len(msgs)) {
			// a clean shutdown had delivered these (and they were
			// written to disk again by whoever held them)
			msgs = msgs[q.skipN:]
		} else {
			q.skipN = 0
		}
	}
	// one claim for all the messages of the record: released by the
	// last of them (and of their copies), it finishes the record
	ref := &diskRef{q: q, seq: q.nextSeq}
	ref.n.Store(int32(len(msgs)))
	q.nextSeq++
	q.pending = append(q.pending, pin{pos: pos, ref: ref, extra: int32(extra)})
	q.extraPending += extra
	q.claimMu.Lock()
	q.unclaimed.add(b, ref, len(msgs))
	q.claimMu.Unlock()

	// give up pins that hold too many segments
	limit := q.pinLimit
	moved := false
	for q.head < len(q.pending) && q.pending[q.head].pos.file+limit < q.next.file {
		if left := int64(q.pending[q.head].ref.n.Load()); !q.pending[q.head].done && left > 0 {
			before := q.dropped
			q.dropped += left
			if bits.Len64(uint64(before)) != bits.Len64(uint64(q.dropped)) { // 1, 2, 4, 8, ...
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
	return msgs
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
	q.extraPending -= int64(q.pending[q.head].extra)
	if q.pending[q.head].pos == q.skipAt {
		q.skipN = 0
	}
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

// claim returns the reference of a message received from ReadChan (nil
// for one that is not tracked): the claim on its record that all the
// record's messages share. A consumer that refills (refill) after taking
// messages does not wake the forwarder here.
func (q *diskBackend) claim(b []byte, refills bool) *diskRef {
	if !refills && q.spaceWait.Load() && len(q.readChan) <= cap(q.readChan)/2 {
		select {
		case q.space <- struct{}{}:
		default:
		}
	}
	if len(b) == 0 {
		return nil
	}
	q.claimMu.Lock()
	r := q.unclaimed.claim(b)
	q.claimMu.Unlock()
	return r
}

// claimList finds the record a message handed out on ReadChan belongs to:
// the records received whose messages are not all claimed yet, oldest
// first, each with the address range of its bytes (every message is the
// record or a sub-slice of it; the bytes stay alive while one of them is
// unclaimed, and Go does not move heap objects). Messages are handed out
// in order, so a claim almost always matches the first entry.
type claimList struct {
	recs []claimRec
	head int
}

type claimRec struct {
	start, end uintptr
	ref        *diskRef
	left       int // messages not claimed yet
}

func bytesAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func (l *claimList) add(rec []byte, ref *diskRef, msgs int) {
	a := bytesAddr(rec)
	l.recs = append(l.recs, claimRec{start: a, end: a + uintptr(len(rec)), ref: ref, left: msgs})
}

// find returns the index of the entry that b belongs to, or -1.
func (l *claimList) find(b []byte) int {
	a := bytesAddr(b)
	for i := l.head; i < len(l.recs); i++ {
		if r := &l.recs[i]; r.left > 0 && a >= r.start && a < r.end {
			return i
		}
	}
	return -1
}

// claim counts message b claimed and returns its record's reference (nil
// if it is not in the list).
func (l *claimList) claim(b []byte) *diskRef {
	i := l.find(b)
	if i < 0 {
		return nil
	}
	r := &l.recs[i]
	ref := r.ref
	if r.left--; r.left == 0 {
		r.ref = nil
		for l.head < len(l.recs) && l.recs[l.head].left == 0 {
			l.head++
		}
		if l.head == len(l.recs) {
			l.recs, l.head = l.recs[:0], 0
		} else if l.head >= 64 && 2*l.head >= len(l.recs) {
			n := copy(l.recs, l.recs[l.head:])
			clear(l.recs[n:])
			l.recs, l.head = l.recs[:n], 0
		}
	}
	return ref
}

func (l *claimList) reset() {
	clear(l.recs)
	l.recs, l.head = l.recs[:0], 0
}

// cursorPersistDelay is how long a cursor move within one segment may wait
// before it is written. Writing it on every finished message cost a
// pwrite(2) per message; a cursor that is older than it could be only
// means a few more messages delivered twice after a crash (at most those
// finished in the last cursorPersistDelay). A move into a later segment is
// written at once, because that is what lets the old segment's hold go.
const cursorPersistDelay = 50 * time.Millisecond

// finish marks record seq finished (all its messages are) and moves the
// cursor past every finished record at the front.
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
	q.persistSoonLocked()
}

// persistLater writes a cursor state that finish or Put left for later.
func (q *diskBackend) persistLater() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.persistPending = false
	q.persistCursorLocked()
}

// diskRef is a message's claim on the disk record it was read from; the
// messages of a batch record and copies of a message for several channels
// share it (n counts them). The record is finished when the last holder
// releases it.
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
func claimRecord(bq BackendQueue, b []byte, refills bool) *diskRef {
	if q := diskOf(bq); q != nil {
		return q.claim(b, refills)
	}
	return nil
}

// ---------------------------------------------------------------------------
// BackendQueue

// ReadChan is where messages are read; claim each one (claimRecord).
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
	if valid && q.w.pos > 0 && q.w.pos+4+l > q.maxBytesPerFile {
		q.w = dqPos{q.w.file + 1, 0}
		q.wFile.Store(q.w.file)
	}
	var extra int64
	q.mu.Lock()
	if q.pinning && q.starting {
		q.retryStartLocked(false)
	}
	// counted before it is written: a cursor state written meanwhile
	// claims at most a record that a crash may lose, which only makes the
	// next start count the messages afresh
	prevClaim := q.wClaim
	if valid {
		extra = recordMessages(data) - 1
		q.wClaim = dqPos{q.w.file, q.w.pos + 4 + l}
		q.extraQ.Add(extra)
		q.persistSoonLocked()
	}
	q.mu.Unlock()
	err := q.dq.Put(data)
	if err != nil {
		if valid {
			q.mu.Lock()
			q.wClaim = prevClaim
			q.extraQ.Add(-extra)
			q.mu.Unlock()
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

// putMessages writes msgs (none deferred) with as few records as
// possible: batch records of up to the record size limit (a single
// message as a version-1 record). Batches are written only while the
// cursor file can count them for the next start. It returns how many
// messages, from the first, were written.
func (q *diskBackend) putMessages(msgs []*Message) (int, error) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return 0, errors.New("exiting")
	}
	batch := q.cursorCounts()
	done := 0
	for done < len(msgs) {
		n, size := 1, diskV1Size(msgs[done])
		if batch {
			n, size = batchFits(msgs[done:], int(q.chk.max))
		}
		buf := q.encBuf[:0]
		if cap(buf) < size {
			buf = make([]byte, 0, size)
		}
		rec := appendDiskRecord(buf, msgs[done:done+n])
		if cap(rec) <= maxEncBuf {
			q.encBuf = rec[:0] // go-diskqueue is done with it when Put returns
		}
		if err := q.putLocked(rec); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// putEntries writes n messages framed as the entries of a batch record
// (buf[:batchHeaderLength] is room for the header, then n times a 4-byte
// length and a version-1 record; see writeBehindBackend): as one batch
// record when the cursor file can count it and it is within the record
// limit, else one record per message. It returns how many messages, from
// the first, were written. buf is free again when it returns.
func (q *diskBackend) putEntries(buf []byte, n int) (int, error) {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return 0, errors.New("exiting")
	}
	batch := q.cursorCounts()
	if n > 1 && batch && len(buf) <= int(q.chk.max) {
		buf[0] = diskFormatBatch
		binary.BigEndian.PutUint32(buf[1:batchHeaderLength], uint32(n))
		if err := q.putLocked(buf); err != nil {
			return 0, err
		}
		return n, nil
	}
	return forEachEntry(buf, func(rec []byte) error { return q.putLocked(rec) })
}

// forEachEntry calls put with every record framed in buf (as putEntries
// takes them), stopping at the first error; it returns how many succeeded.
func forEachEntry(buf []byte, put func(rec []byte) error) (int, error) {
	done := 0
	for off := batchHeaderLength; off+batchEntryHeader <= len(buf); done++ {
		l := int(binary.BigEndian.Uint32(buf[off:]))
		off += batchEntryHeader
		if err := put(buf[off : off+l : off+l]); err != nil {
			return done, err
		}
		off += l
	}
	return done, nil
}

// cursorCounts reports whether batch records may be written: the cursor
// file can count their messages for the next start.
func (q *diskBackend) cursorCounts() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cursorFile != nil
}

// maxEncBuf is the largest encoding buffer putMessages keeps for the next
// call.
const maxEncBuf = 256 << 10

// Depth counts the messages the forwarder holds as well.
func (q *diskBackend) Depth() int64 {
	r := make(chan int64, 1)
	select {
	case q.depthReq <- r:
		return <-r
	case <-q.fwdDone:
		return q.depthWith(0)
	}
}

// isEmpty is a cheap Depth() == 0 (no round trip to the forwarder); it
// may be momentarily stale.
func (q *diskBackend) isEmpty() bool {
	return q.dq.Depth() == 0 && !q.holding.Load() && len(q.readChan) == 0
}

// Close closes go-diskqueue (which persists its meta file). On a clean
// shutdown the channels have written their unfinished messages to disk
// themselves, so nothing stays pending except the messages the forwarder
// holds: the cursor is left pointing at their record, with the number of
// its messages handed out before (skip), and the next start reads the rest
// first again (without a cursor, or without pinning, they are put back at
// the end of the queue instead). While batch records are queued, the
// cursor file stays too: it has their message count for the next start.
func (q *diskBackend) Close() error {
	held := q.control(fwdStop)
	q.wmu.Lock()
	if q.closed {
		q.wmu.Unlock()
		return errors.New("exiting")
	}
	q.mu.Lock()
	keep := false
	q.claimMu.Lock()
	var first *diskRef
	rest := 0 // held messages of first's record
	if len(held) > 0 {
		if i := q.unclaimed.find(held[0]); i >= 0 {
			first = q.unclaimed.recs[i].ref
			for _, m := range held {
				if q.unclaimed.find(m) == i {
					rest++
				}
			}
		}
	}
	q.claimMu.Unlock()
	if len(held) > 0 && q.pinning && q.cursorFile != nil {
		if first != nil && first.seq >= q.base && first.seq < q.nextSeq {
			// held starts with the rest of one record, the records
			// after it are whole
			seq := first.seq
			q.pending, q.head, q.base = q.pending[q.head+int(seq-q.base):], 0, seq
			q.extraPending = 0
			for _, p := range q.pending {
				q.extraPending += int64(p.extra)
			}
			p := q.pending[0]
			q.skipAt, q.skipN = p.pos, int64(p.extra)+1-int64(rest)
			keep = true
		}
	}
	if !keep {
		q.pending, q.head, q.base = nil, 0, q.nextSeq
		q.extraPending = 0
	}
	// from here on a crash must not rewind past what is pending now
	q.persistCursorLocked()
	if keep && q.cursorFile != nil {
		q.cursorFile.Sync()
	}
	q.mu.Unlock()
	if len(held) > 0 && !keep {
		q.putBackLocked(held)
	}
	q.closed = true
	q.wmu.Unlock()

	err := q.dq.Close()
	q.mu.Lock()
	// go-diskqueue may have renamed the segment we had read to its end
	// while closing (its reader saw EOF after a roll)
	q.removeSpuriousBad(q.files.segment(q.next.file))
	if st := q.stateLocked(); q.cursorFile != nil && !keep && (st.extra != 0 || st.skip != 0) {
		// the cursor at go-diskqueue's read position, so that the
		// next start takes the count from here
		q.normalizeNextLocked()
		keep = true
	}
	if keep && q.cursorFile != nil {
		// the cursor file and the holds from its segment on stay for the
		// next start (reconcileDiskQueue)
		q.persistCursorLocked()
		q.cursorFile.Sync()
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

// putBackLocked writes messages read ahead back at the end of the queue,
// as few records as fit.
func (q *diskBackend) putBackLocked(held [][]byte) {
	for len(held) > 0 {
		n, size := 1, batchHeaderLength+batchEntryHeader+len(held[0])
		for n < len(held) && size+batchEntryHeader+len(held[n]) <= int(q.chk.max) {
			size += batchEntryHeader + len(held[n])
			n++
		}
		rec := held[0]
		if n > 1 {
			rec = encodeBatchRecords(held[:n])
		}
		if err := q.putLocked(rec); err != nil {
			q.logf(lg.ERROR, "DISKQUEUE(%s) failed to put back %d read-ahead messages - %s", q.files.name, n, err)
		}
		held = held[n:]
	}
}

// normalizeNextLocked moves the read position from the end of a finished
// segment to the start of the next one, where go-diskqueue has it.
func (q *diskBackend) normalizeNextLocked() {
	for q.next.file < q.w.file {
		if st, err := os.Stat(q.files.segment(q.next.file)); err == nil && q.next.pos < st.Size() {
			return
		}
		q.next = dqPos{q.next.file + 1, 0}
	}
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
	q.removeSpuriousBad(q.files.segment(q.next.file))
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
	q.removeSpuriousBad(q.files.segment(q.next.file))
	q.pending, q.head, q.base = nil, 0, q.nextSeq
	q.extraPending = 0
	q.extraQ.Store(0)
	q.skipN = 0
	q.skipQ.Store(0)
	q.claimMu.Lock()
	q.unclaimed.reset()
	q.claimMu.Unlock()
	q.next = q.w
	q.wClaim = q.w
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
