package nsqd

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// Message IDs (D-ID-01): a 64-bit value built from a ~1 ms tick (ns >> 20),
// the 10-bit node id and a 12-bit sequence within the tick, rendered as 16
// lowercase hex characters.
const (
	nodeIDBits     = 10
	sequenceBits   = 12
	nodeIDShift    = sequenceBits
	timestampShift = sequenceBits + nodeIDBits
	sequenceMask   = int64(-1) ^ (int64(-1) << sequenceBits)

	// twepoch is NSQ's custom epoch in 2^20 ns ticks.
	twepoch = int64(1288834974288)
)

var (
	errTimeBackwards    = errors.New("time has gone backwards")
	errSequenceExpired  = errors.New("sequence expired")
	errIDNotIncreasing  = errors.New("ID went backward")
	errInvalidMessageID = errors.New("invalid message ID")
)

type guid int64

// guidFactory hands out increasing IDs for one topic; safe for concurrent use.
type guidFactory struct {
	mu            sync.Mutex
	nodeID        int64
	sequence      int64
	lastTimestamp int64
	lastID        guid
}

func newGUIDFactory(nodeID int64) *guidFactory {
	return &guidFactory{nodeID: nodeID}
}

// next returns a new ID or an error when the clock went backwards or the
// tick's 4096 sequence numbers are used up; callers retry after a pause.
func (f *guidFactory) next() (guid, error) { return f.nextAt(time.Now().UnixNano()) }

// nextAt is next for a clock reading the caller already has (unix ns): a
// publish reads the clock once for the ID and the message timestamp.
func (f *guidFactory) nextAt(now int64) (guid, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	ts := now >> 20
	if ts < f.lastTimestamp {
		return 0, errTimeBackwards
	}
	if f.lastTimestamp == ts {
		f.sequence = (f.sequence + 1) & sequenceMask
		if f.sequence == 0 {
			return 0, errSequenceExpired
		}
	} else {
		f.sequence = 0
	}
	f.lastTimestamp = ts

	id := guid(((ts - twepoch) << timestampShift) |
		(f.nodeID << nodeIDShift) |
		f.sequence)
	if id <= f.lastID {
		return 0, errIDNotIncreasing
	}
	f.lastID = id
	return id, nil
}

// fillAt hands out up to len(dst) consecutive IDs of the tick of now
// under one lock (an MPUB's messages take one lock instead of one each).
// It returns how many it filled: fewer than asked when the tick's 4096
// sequence numbers run out (errSequenceExpired) or the clock went back.
func (f *guidFactory) fillAt(now int64, dst []guid) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	ts := now >> 20
	if ts < f.lastTimestamp {
		return 0, errTimeBackwards
	}
	seq := int64(-1) // the last sequence number used in this tick
	if ts == f.lastTimestamp {
		seq = f.sequence
	}
	base := ((ts - twepoch) << timestampShift) | (f.nodeID << nodeIDShift)
	n := 0
	for ; n < len(dst) && seq < sequenceMask; n++ {
		seq++
		id := guid(base | seq)
		if id <= f.lastID {
			return n, errIDNotIncreasing
		}
		dst[n] = id
		f.lastID = id
		f.sequence = seq
		f.lastTimestamp = ts
	}
	if n < len(dst) {
		return n, errSequenceExpired
	}
	return n, nil
}

// Hex renders the ID as the 16 lowercase hex bytes used on the wire
// (what hex.Encode of its big-endian bytes gives), eight digits at a time
// in a uint64: an MPUB stamps millions of IDs a second.
func (g guid) Hex() MessageID {
	var id MessageID
	binary.BigEndian.PutUint64(id[0:8], hexDigits(uint32(g>>32)))
	binary.BigEndian.PutUint64(id[8:16], hexDigits(uint32(g)))
	return id
}

// hexDigits returns the 8 lowercase hex digits of v, most significant in
// the top byte.
func hexDigits(v uint32) uint64 {
	// one nibble per byte, the top nibble in the top byte
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	// '0'+n, and 'a'-'0'-10 = 39 more where n >= 10 (n+6 carries into bit 4)
	tens := ((x + 0x0606060606060606) >> 4) & 0x0101010101010101
	return x + 0x3030303030303030 + tens*39
}

// GenerateIDAt is GenerateID for a clock reading the caller already has
// (unix ns); when that tick's IDs are used up it falls back to GenerateID.
func (t *Topic) GenerateIDAt(now int64) MessageID {
	if id, err := t.idFactory.nextAt(now); err == nil {
		return id.Hex()
	}
	return t.GenerateID()
}

// stampNew gives msgs (bodies set) their IDs and timestamps with one clock
// read and one ID lock per 64 messages; when a tick's IDs run out it reads
// the clock again, pausing as GenerateID does until the next tick.
func (t *Topic) stampNew(msgs []*Message) {
	var ids [64]guid
	now := time.Now().UnixNano()
	failures := 0
	for len(msgs) > 0 {
		n, err := t.idFactory.fillAt(now, ids[:min(len(msgs), len(ids))])
		for i, id := range ids[:n] {
			m := msgs[i]
			m.ID = id.Hex()
			m.Timestamp = now
		}
		msgs = msgs[n:]
		if err != nil {
			if failures%10000 == 0 && err != errSequenceExpired {
				t.nsqd.logf(lg.ERROR, "TOPIC(%s): failed to create guid - %s", t.name, err)
			}
			failures++
			if err == errSequenceExpired {
				// the next tick starts within 2^20 ns
				time.Sleep(time.Duration(((now>>20)+1)<<20 - time.Now().UnixNano()))
			} else {
				time.Sleep(time.Millisecond)
			}
			now = time.Now().UnixNano()
		}
	}
}
