package nsqd

import (
	"encoding/binary"
	"errors"
	"fmt"

	"time"
)

// MsgIDLength is the length of a message ID on the wire (D-TCP-46).
const MsgIDLength = 16

// MessageID is the 16 hex characters identifying a message within a topic.
type MessageID [MsgIDLength]byte

// Wire layout of a message frame's data (D-TCP-45):
//
//	[8 bytes BE int64 timestamp ns][2 bytes BE uint16 attempts][16 bytes ID][body]
const wireHeaderLength = 8 + 2 + MsgIDLength

// On-disk record layout (what we hand go-diskqueue, which prefixes it with
// its own int32 length).
//
// Version 1 (written by this nsqd):
//
//	offset  size  field
//	0       1     version marker 0x81 (high bit set, low bits = version 1)
//	1       8     timestamp, ns since epoch, BE int64
//	9       2     attempts, BE uint16
//	11      16    message ID (hex ASCII)
//	27      8     deliver-at, ns since epoch, BE int64; 0 = deliver now
//	35      n     body
//
// Legacy records (written by NSQ itself, D-DISK-02) have no marker: they start
// with the timestamp, whose first byte is < 0x80 for any date after 1970, so
// the two are told apart by the high bit of the first byte. Reading legacy
// records lets an operator swap NSQ's binary for ours on an existing data path.
//
// The deliver-at field is why the format exists: NSQ drops a deferred
// message's timing when it goes to disk; we keep it, so a DPUB that
// overflows to disk or a deferred message flushed at shutdown is still not
// delivered before its time.
const (
	diskFormatV1       = 0x81
	diskHeaderLengthV1 = 1 + 8 + 2 + MsgIDLength + 8
	legacyHeaderLength = wireHeaderLength
)

// errCorruptRecord is returned for a disk record that cannot be decoded.
var errCorruptRecord = errors.New("corrupt message record")

// Message is one message as it moves through a topic and its channels.
//
// Ownership: a *Message is owned by exactly one queue or goroutine at a time
// (topic queue → topic pump → one channel queue → one client pump → the
// channel's in-flight or deferred set). The bookkeeping fields below are
// only touched by the current owner or under the owning channel's lock.
type Message struct {
	ID        MessageID
	Body      []byte
	Timestamp int64
	Attempts  uint16

	// deferred is the DPUB delay while the message sits in a topic queue.
	deferred time.Duration
	// deliverAt (ns) is set on a message read back from disk that must not
	// be delivered before then.
	deliverAt int64

	// in-flight / deferred bookkeeping, guarded by the channel's locks
	clientID int64
	pri      int64 // deadline (in flight) or due time (deferred), unix ns
	index    int   // position in the channel heap
	// deliveredAt (unix ns) is when the message was last sent to a client
	// (TOUCH cap); an int64 rather than a time.Time, whose location
	// pointer made every delivery a write-barriered store.
	deliveredAt int64

	// ref is the disk record this message was read from while it is not
	// finished (backend_disk.go); copies for several channels share it
	ref *diskRef

	// an MPUB allocates its bodies and Messages in blocks (readMPUB):
	// sharedBody says Body is a slice of a larger buffer, inBatch that
	// this struct is an element of an array. A message that will wait
	// long (deferred) is copied out of both (Channel.deferUntil), so it
	// does not keep its batch alive.
	sharedBody bool
	inBatch    bool
}

// NewMessage builds a message with the current time as its timestamp.
func NewMessage(id MessageID, body []byte) *Message {
	return &Message{ID: id, Body: body, Timestamp: time.Now().UnixNano()}
}

// NewMessageAt is NewMessage with the timestamp (unix ns) given.
func NewMessageAt(id MessageID, body []byte, ts int64) *Message {
	return &Message{ID: id, Body: body, Timestamp: ts}
}

// newMessageFor builds a new message of topic t, reading the clock once
// for its ID and its timestamp (a clock read is ~60 ns on our VMs).
func newMessageFor(t *Topic, body []byte) *Message {
	now := time.Now().UnixNano()
	return NewMessageAt(t.GenerateIDAt(now), body, now)
}

// copyForChannel returns a message that shares the body (never mutated) but
// has its own bookkeeping, for fan-out to a further channel.
func (m *Message) copyForChannel() *Message {
	m.ref.retain()
	return &Message{
		ID:         m.ID,
		Body:       m.Body,
		Timestamp:  m.Timestamp,
		Attempts:   m.Attempts,
		deferred:   m.deferred,
		deliverAt:  m.deliverAt,
		ref:        m.ref,
		sharedBody: m.sharedBody,
	}
}

// appendWire appends the message's frame data (not the frame header).
func (m *Message) appendWire(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
	b = binary.BigEndian.AppendUint16(b, m.Attempts)
	b = append(b, m.ID[:]...)
	return append(b, m.Body...)
}

// writeWireHeader writes the 26 header bytes of the wire layout into buf.
func (m *Message) writeWireHeader(buf []byte) {
	binary.BigEndian.PutUint64(buf[0:8], uint64(m.Timestamp))
	binary.BigEndian.PutUint16(buf[8:10], m.Attempts)
	copy(buf[10:26], m.ID[:])
}

// encodeDisk renders the version-1 disk record; deliverAt 0 means no delay.
func (m *Message) encodeDisk(deliverAt int64) []byte {
	b := make([]byte, diskHeaderLengthV1, diskHeaderLengthV1+len(m.Body))
	b[0] = diskFormatV1
	binary.BigEndian.PutUint64(b[1:9], uint64(m.Timestamp))
	binary.BigEndian.PutUint16(b[9:11], m.Attempts)
	copy(b[11:27], m.ID[:])
	binary.BigEndian.PutUint64(b[27:35], uint64(deliverAt))
	return append(b, m.Body...)
}

// decodeDiskMessage parses a version-1 or legacy (NSQ) disk record. The body
// aliases b, which go-diskqueue allocates fresh for every read.
func decodeDiskMessage(b []byte) (*Message, error) {
	m := new(Message)
	if err := decodeDiskMessageInto(m, b); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeDiskMessageInto is decodeDiskMessage into m, which must be a zero
// Message (new, or fresh from a messageSlab): only the decoded fields are
// stored, field by field, which spares copying a whole struct with its
// write barriers.
func decodeDiskMessageInto(m *Message, b []byte) error {
	if len(b) > 0 && b[0]&0x80 != 0 {
		if b[0] != diskFormatV1 {
			return fmt.Errorf("%w: unknown format version 0x%02x", errCorruptRecord, b[0])
		}
		if len(b) <= diskHeaderLengthV1 {
			return fmt.Errorf("%w: %d bytes is shorter than a v1 record", errCorruptRecord, len(b))
		}
		m.Timestamp = int64(binary.BigEndian.Uint64(b[1:9]))
		m.Attempts = binary.BigEndian.Uint16(b[9:11])
		m.deliverAt = int64(binary.BigEndian.Uint64(b[27:35]))
		m.Body = b[diskHeaderLengthV1:]
		m.ID = MessageID(b[11:27])
		return nil
	}
	if len(b) < legacyHeaderLength {
		return fmt.Errorf("%w: %d bytes is shorter than a legacy record", errCorruptRecord, len(b))
	}
	m.Timestamp = int64(binary.BigEndian.Uint64(b[0:8]))
	m.Attempts = binary.BigEndian.Uint16(b[8:10])
	m.Body = b[legacyHeaderLength:]
	m.ID = MessageID(b[10:26])
	return nil
}

// messageSlab hands out Messages carved from arrays of messageSlabSize
// (one allocation per array instead of one per message read from disk);
// each is marked inBatch, so one that waits long is copied out of its
// array (Channel.deferUntil). Owned by one goroutine (a client's pump).
type messageSlab struct{ free []Message }

const messageSlabSize = 64

func (s *messageSlab) next() *Message {
	if len(s.free) == 0 {
		s.free = make([]Message, messageSlabSize)
	}
	m := &s.free[0]
	s.free = s.free[1:]
	return m
}

// decodeWireMessage parses a message frame's data (used by tests and tools).
func decodeWireMessage(b []byte) (*Message, error) {
	if len(b) < wireHeaderLength {
		return nil, fmt.Errorf("message data too short: %d bytes", len(b))
	}
	m := &Message{
		Timestamp: int64(binary.BigEndian.Uint64(b[0:8])),
		Attempts:  binary.BigEndian.Uint16(b[8:10]),
		Body:      b[wireHeaderLength:],
	}
	copy(m.ID[:], b[10:26])
	return m, nil
}
