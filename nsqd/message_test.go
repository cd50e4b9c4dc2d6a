package nsqd

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestDiskRecordRoundTrip(t *testing.T) {
	m := NewMessage(MessageID{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'}, []byte("hello"))
	m.Attempts = 7
	due := time.Now().Add(time.Hour).UnixNano()
	b := m.encodeDisk(due)
	if b[0] != diskFormatV1 || len(b) != diskHeaderLengthV1+5 {
		t.Fatalf("bad layout: % x", b)
	}
	got, err := decodeDiskMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.Timestamp != m.Timestamp || got.Attempts != 7 ||
		got.deliverAt != due || !bytes.Equal(got.Body, m.Body) {
		t.Fatalf("round trip mismatch: %+v vs %+v", got, m)
	}
}

// A record written by NSQ itself (D-DISK-02) is still readable.
func TestDiskRecordLegacy(t *testing.T) {
	ts := time.Now().UnixNano()
	b := binary.BigEndian.AppendUint64(nil, uint64(ts))
	b = binary.BigEndian.AppendUint16(b, 3)
	b = append(b, []byte("18a3352a3f669000")...)
	b = append(b, "body"...)
	m, err := decodeDiskMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Timestamp != ts || m.Attempts != 3 || string(m.ID[:]) != "18a3352a3f669000" ||
		string(m.Body) != "body" || m.deliverAt != 0 {
		t.Fatalf("legacy decode wrong: %+v", m)
	}
}

func TestDiskRecordCorrupt(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		make([]byte, legacyHeaderLength-1),
		append([]byte{0x82}, make([]byte, 40)...),         // unknown version
		append([]byte{diskFormatV1}, make([]byte, 30)...), // too short for v1
	} {
		if _, err := decodeDiskMessage(b); !errors.Is(err, errCorruptRecord) {
			t.Errorf("decode(% x) = %v, want corrupt", b, err)
		}
	}
}

// D-TCP-45: wire layout of a message frame's data.
func TestWireHeader(t *testing.T) {
	m := &Message{ID: MessageID{'a'}, Timestamp: 42, Attempts: 2, Body: []byte("xy")}
	b := m.appendWire(nil)
	if len(b) != wireHeaderLength+2 {
		t.Fatalf("len %d", len(b))
	}
	var hdr [wireHeaderLength]byte
	m.writeWireHeader(hdr[:])
	if !bytes.Equal(hdr[:], b[:wireHeaderLength]) {
		t.Fatal("writeWireHeader and appendWire disagree")
	}
	back, err := decodeWireMessage(b)
	if err != nil || back.Timestamp != 42 || back.Attempts != 2 || back.ID != m.ID || string(back.Body) != "xy" {
		t.Fatalf("wire round trip: %+v %v", back, err)
	}
}

func TestMsgPQ(t *testing.T) {
	pq := newMsgPQ(0)
	var msgs []*Message
	for i := 0; i < 200; i++ {
		m := &Message{pri: int64((i * 7919) % 200)}
		msgs = append(msgs, m)
		pq.Push(m)
	}
	// remove a few from the middle by index
	for _, m := range msgs[:50] {
		pq.Remove(m.index)
		if m.index != -1 {
			t.Fatal("removed message keeps an index")
		}
	}
	removed := map[*Message]bool{}
	for _, m := range msgs[:50] {
		removed[m] = true
	}
	last := int64(-1)
	count := 0
	for {
		m, _ := pq.PeekAndShift(1 << 62)
		if m == nil {
			break
		}
		if removed[m] {
			t.Fatal("removed message popped")
		}
		if m.pri < last {
			t.Fatalf("out of order: %d after %d", m.pri, last)
		}
		last = m.pri
		count++
	}
	if count != 150 {
		t.Fatalf("popped %d, want 150", count)
	}
	pq.Push(&Message{pri: 100})
	if m, wait := pq.PeekAndShift(40); m != nil || wait != 60 {
		t.Fatalf("PeekAndShift before due = %v, %d", m, wait)
	}
}

// D-ID-01: IDs increase, carry the node id, and render as 16 lowercase hex.
func TestGUID(t *testing.T) {
	f := newGUIDFactory(617)
	var last guid
	for i := 0; i < 10000; i++ {
		id, err := f.next()
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		if id <= last {
			t.Fatalf("id %d not increasing after %d", id, last)
		}
		if (int64(id)>>nodeIDShift)&0x3ff != 617 {
			t.Fatalf("node id not encoded in %x", int64(id))
		}
		last = id
	}
	h := last.Hex()
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			t.Fatalf("non-hex id %s", h[:])
		}
	}
}

// Hex gives exactly what hex.Encode of the big-endian bytes gives: every
// nibble value in every position, the edges, and random IDs.
func TestGUIDHexMatchesEncodingHex(t *testing.T) {
	check := func(g guid) {
		t.Helper()
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(g))
		want := hex.EncodeToString(b[:])
		if got := g.Hex(); string(got[:]) != want {
			t.Fatalf("Hex(%#x) = %s, want %s", uint64(g), got[:], want)
		}
	}
	for pos := 0; pos < 64; pos += 4 {
		for n := uint64(0); n < 16; n++ {
			check(guid(n << pos))
			check(guid(^(n << pos)))
		}
	}
	check(0)
	check(-1)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		check(guid(r.Uint64()))
	}
}

func BenchmarkGUIDHex(b *testing.B) {
	g := guid(0x18a3c2a92b669064)
	var sink MessageID
	for i := 0; i < b.N; i++ {
		sink = (g + guid(i)).Hex()
	}
	_ = sink
}

func BenchmarkGUID(b *testing.B) {
	f := newGUIDFactory(1)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		id, err := f.next()
		if err == nil {
			_ = id.Hex()
		}
	}
}
