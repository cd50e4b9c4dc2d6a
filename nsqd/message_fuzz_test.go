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
// round-trips through encodeDisk.
func FuzzDecodeDiskMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
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

func fzDiskSeeds() []fzSeed {
	m := &Message{Timestamp: 1700000000123456789, Attempts: 3, Body: []byte("body")}
	copy(m.ID[:], fzSeedID)
	s := func(name string, b []byte) fzSeed { return fzSeed{name, []interface{}{b}} }
	v1 := m.encodeDisk(0)
	v1Deferred := m.encodeDisk(1700000005000000000)
	legacy := m.appendWire(nil)
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
	}
}
