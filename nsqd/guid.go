package nsqd

import (
	"encoding/hex"
	"errors"
	"sync"
	"time"
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

// Hex renders the ID as the 16 lowercase hex bytes used on the wire.
func (g guid) Hex() MessageID {
	var b [8]byte
	v := uint64(g)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	var id MessageID
	hex.Encode(id[:], b[:])
	return id
}

// GenerateIDAt is GenerateID for a clock reading the caller already has
// (unix ns); when that tick's IDs are used up it falls back to GenerateID.
func (t *Topic) GenerateIDAt(now int64) MessageID {
	if id, err := t.idFactory.nextAt(now); err == nil {
		return id.Hex()
	}
	return t.GenerateID()
}
