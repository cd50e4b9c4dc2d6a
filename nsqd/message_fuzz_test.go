package nsqd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzDecodeDiskMessage: the on-disk record decoder (a record read back
// from a diskqueue file, possibly written by NSQ itself or damaged) never
// panics, refuses only with errCorruptRecord, and is exact: a decoded
// record re-encodes to the same bytes. The input read as fields also
// round-trips through encodeDisk. The same holds for the batch record
// splitter (message_batch.go): it splits exactly or refuses, and several
// messages made of the input's fields come back out of a batch.
func FuzzDecodeDiskMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		fzCheckBatch(t, b)
		m, err := decodeDiskMessage(b)
		if err != nil {
			if !errors.Is(err, errCorruptRecord) {
				t.Fatalf("error %v is not errCorruptRecord", err)
			}
			if len(b) > diskHeaderLengthV1 && (b[0] == diskFormatV1 || b[0]&0x80 == 0) {
				t.Fatalf("a well-formed %d-byte record refused: %v", len(b), err)
			}
		} else {
			var again []byte
			if b[0]&0x80 != 0 {
				again = m.encodeDisk(m.deliverAt)
			} else {
				if m.deliverAt != 0 {
					t.Fatalf("legacy record decoded with deliverAt %d", m.deliverAt)
				}
				again = m.appendWire(nil)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("decoded %+v re-encodes to %x, not %x", m, again, b)
			}
		}

		// the input as fields: timestamp, attempts, ID, deliver-at, body
		if len(b) < 8+2+MsgIDLength+8+1 {
			return
		}
		in := &Message{
			Timestamp: int64(binary.BigEndian.Uint64(b[0:8])),
			Attempts:  binary.BigEndian.Uint16(b[8:10]),
			Body:      b[34:],
		}
		copy(in.ID[:], b[10:26])
		deliverAt := int64(binary.BigEndian.Uint64(b[26:34]))
		out, err := decodeDiskMessage(in.encodeDisk(deliverAt))
		if err != nil {
			t.Fatalf("encodeDisk output refused: %v", err)
		}
		if out.ID != in.ID || out.Timestamp != in.Timestamp || out.Attempts != in.Attempts ||
			out.deliverAt != deliverAt || !bytes.Equal(out.Body, in.Body) {
			t.Fatalf("round trip: %+v (deliverAt %d) became %+v", in, deliverAt, out)
		}
	})
}

// fzCheckBatch is FuzzDecodeDiskMessage's part for batch records.
func fzCheckBatch(t *testing.T, b []byte) {
	parts, err := splitDiskBatch(b, nil)
	if err != nil {
		if !errors.Is(err, errCorruptRecord) {
			t.Fatalf("batch error %v is not errCorruptRecord", err)
		}
		if len(parts) != 0 {
			t.Fatalf("%d parts returned with an error", len(parts))
		}
	} else {
		if int64(len(parts)) != recordMessages(b) {
			t.Fatalf("%d parts, recordMessages %d", len(parts), recordMessages(b))
		}
		if again := encodeBatchRecords(parts); !bytes.Equal(again, b) {
			t.Fatalf("parts re-encode to %x, not %x", again, b)
		}
		for _, p := range parts {
			if cap(p) != len(p) {
				t.Fatalf("part capacity %d beyond its length %d", cap(p), len(p))
			}
			decodeDiskMessage(p) // must not panic
		}
	}

	// the input as fields of up to three messages with non-empty bodies
	if len(b) < 8+2+MsgIDLength+1 {
		return
	}
	base := Message{
		Timestamp: int64(binary.BigEndian.Uint64(b[0:8])),
		Attempts:  binary.BigEndian.Uint16(b[8:10]),
	}
	copy(base.ID[:], b[10:26])
	body := b[26:]
	var msgs []*Message
	for len(body) > 0 && len(msgs) < 3 {
		n := max(1, min(len(body), int(body[0])%32))
		if len(msgs) == 2 {
			n = len(body)
		}
		m := base
		m.Body = body[:n]
		m.Attempts += uint16(len(msgs))
		msgs = append(msgs, &m)
		body = body[n:]
	}
	rec := appendDiskRecord(nil, msgs)
	if n, size := batchFits(msgs, 1<<30); n != len(msgs) || size != len(rec) {
		t.Fatalf("batchFits %d, %d for %d messages in %d bytes", n, size, len(msgs), len(rec))
	}
	if len(msgs) == 1 {
		parts = [][]byte{rec}
	} else if parts, err = splitDiskBatch(rec, nil); err != nil {
		t.Fatalf("appendDiskRecord output refused: %v", err)
	}
	if len(parts) != len(msgs) {
		t.Fatalf("%d messages came back as %d", len(msgs), len(parts))
	}
	for i, p := range parts {
		out, err := decodeDiskMessage(p)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		in := msgs[i]
		if out.ID != in.ID || out.Timestamp != in.Timestamp || out.Attempts != in.Attempts ||
			out.deliverAt != 0 || !bytes.Equal(out.Body, in.Body) {
			t.Fatalf("message %d: %+v became %+v", i, in, out)
		}
	}
}

func fzDiskSeeds() []fzSeed {
	m := &Message{Timestamp: 1700000000123456789, Attempts: 3, Body: []byte("body")}
	copy(m.ID[:], fzSeedID)
	s := func(name string, b []byte) fzSeed { return fzSeed{name, []interface{}{b}} }
	v1 := m.encodeDisk(0)
	v1Deferred := m.encodeDisk(1700000005000000000)
	legacy := m.appendWire(nil)
	m2 := *m
	m2.Body = []byte("second body")
	batch := appendDiskRecord(nil, []*Message{m, &m2, m})
	return []fzSeed{
		s("empty", nil),
		s("v1", v1),
		s("v1-deferred", v1Deferred),
		s("v1-header-only", v1[:diskHeaderLengthV1]),
		s("v1-truncated", v1[:20]),
		s("marker-only", []byte{diskFormatV1}),
		s("unknown-version", append([]byte{0x82}, v1[1:]...)),
		s("legacy", legacy),
		s("legacy-empty-body", legacy[:legacyHeaderLength]),
		s("legacy-truncated", legacy[:legacyHeaderLength-1]),
		s("negative-deliver-at", m.encodeDisk(-1)),
		s("unknown-version-0x83", append([]byte{0x83}, v1[1:]...)),
		s("batch", batch),
		s("batch-one", encodeBatchRecords([][]byte{v1})),
		s("batch-count-short", appendDiskRecord(nil, []*Message{m, m})[:batchHeaderLength+4+len(v1)]),
		s("batch-count-zero", append([]byte{diskFormatBatch, 0, 0, 0, 0}, batch[batchHeaderLength:]...)),
		s("batch-count-high", append([]byte{diskFormatBatch, 0, 0, 0, 3}, batch[batchHeaderLength:]...)),
		s("batch-cut", batch[:len(batch)-3]),
		s("batch-trailing", append(bytes.Clone(batch), 'x')),
		s("batch-entry-zero", []byte{diskFormatBatch, 0, 0, 0, 1, 0, 0, 0, 0}),
		s("batch-entry-huge", append([]byte{diskFormatBatch, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, v1...)),
		s("batch-nested", encodeBatchRecords([][]byte{batch, v1})),
	}
}
