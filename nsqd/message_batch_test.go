package nsqd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func batchMsgs(prefix string, n, size int) []*Message {
	msgs := make([]*Message, n)
	for i := range msgs {
		body := fmt.Sprintf("%s%d/", prefix, i)
		body += strings.Repeat("b", max(size-len(body), 0))
		m := &Message{Timestamp: 1700000000000000000 + int64(i), Attempts: uint16(i % 3), Body: []byte(body)}
		copy(m.ID[:], fmt.Sprintf("%016x", i))
		msgs[i] = m
	}
	return msgs
}

// A batch record splits into the version-1 records of its messages, each
// decoding to the message written.
func TestDiskBatchRoundTrip(t *testing.T) {
	msgs := batchMsgs("m", 7, 50)
	rec := appendDiskRecord(nil, msgs)
	if rec[0] != diskFormatBatch {
		t.Fatalf("marker 0x%02x", rec[0])
	}
	if got := recordMessages(rec); got != 7 {
		t.Errorf("recordMessages %d, want 7", got)
	}
	n, size := batchFits(msgs, 1<<20)
	if n != 7 || size != len(rec) {
		t.Errorf("batchFits %d, %d; want 7, %d", n, size, len(rec))
	}
	parts, err := splitDiskBatch(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != len(msgs) {
		t.Fatalf("%d parts", len(parts))
	}
	for i, p := range parts {
		if !bytes.Equal(p, msgs[i].encodeDisk(0)) {
			t.Errorf("part %d is not message %d's v1 record", i, i)
		}
		if cap(p) != len(p) {
			t.Errorf("part %d: capacity %d beyond its length %d", i, cap(p), len(p))
		}
		m, err := decodeDiskMessage(p)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if m.ID != msgs[i].ID || m.Timestamp != msgs[i].Timestamp || m.Attempts != msgs[i].Attempts ||
			!bytes.Equal(m.Body, msgs[i].Body) || m.deliverAt != 0 {
			t.Errorf("part %d decodes to %+v, want %+v", i, m, msgs[i])
		}
	}
	if again := encodeBatchRecords(parts); !bytes.Equal(again, rec) {
		t.Errorf("encodeBatchRecords of the parts differs from the record")
	}
	// a single message is a plain v1 record
	one := appendDiskRecord(nil, msgs[:1])
	if !bytes.Equal(one, msgs[0].encodeDisk(0)) || recordMessages(one) != 1 {
		t.Errorf("one message: %x", one)
	}
	// a batch is not a single message
	if _, err := decodeDiskMessage(rec); !errors.Is(err, errCorruptRecord) {
		t.Errorf("decodeDiskMessage(batch) = %v, want errCorruptRecord", err)
	}
}

// batchFits never makes a record over the limit, and a message alone is
// always a record of its own.
func TestDiskBatchFits(t *testing.T) {
	msgs := batchMsgs("m", 100, 100)
	for _, limit := range []int{1, 100, 200, 300, 1000, 5000, 1 << 20} {
		var got []*Message
		for rest := msgs; len(rest) > 0; {
			n, size := batchFits(rest, limit)
			if n < 1 {
				t.Fatalf("limit %d: n %d", limit, n)
			}
			rec := appendDiskRecord(nil, rest[:n])
			if len(rec) != size {
				t.Errorf("limit %d: size %d, record %d bytes", limit, size, len(rec))
			}
			if n > 1 && len(rec) > limit {
				t.Errorf("limit %d: batch of %d is %d bytes", limit, n, len(rec))
			}
			if n == 1 && rec[0] != diskFormatV1 {
				t.Errorf("limit %d: a single message is not a v1 record", limit)
			}
			got = append(got, rest[:n]...)
			rest = rest[n:]
		}
		if len(got) != len(msgs) {
			t.Errorf("limit %d: %d messages", limit, len(got))
		}
	}
	if l := diskRecordLimit(1024*1024, 5*1024*1024); int64(l) != 5*1024*1024+batchSlack {
		t.Errorf("diskRecordLimit %d", l)
	}
	if l := diskRecordLimit(10<<20, 1<<20); int64(l) != 10<<20+diskHeaderLengthV1 {
		t.Errorf("diskRecordLimit %d", l)
	}
}

func TestDiskBatchCorrupt(t *testing.T) {
	good := appendDiskRecord(nil, batchMsgs("m", 3, 10))
	withCount := func(n uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[1:5], n)
		return b
	}
	zeroEntry := []byte{diskFormatBatch, 0, 0, 0, 1, 0, 0, 0, 0}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"marker only":    {diskFormatBatch},
		"v1 record":      batchMsgs("m", 1, 10)[0].encodeDisk(0),
		"count 0":        withCount(0),
		"count too big":  withCount(4),
		"count huge":     withCount(1 << 31),
		"count short":    withCount(2),
		"cut off":        good[:len(good)-1],
		"trailing bytes": append(bytes.Clone(good), 0),
		"zero entry":     zeroEntry,
		"entry too long": append([]byte{diskFormatBatch, 0, 0, 0, 1, 0, 0, 0, 9}, "abc"...),
	} {
		dst := [][]byte{[]byte("kept")}
		got, err := splitDiskBatch(b, dst)
		if !errors.Is(err, errCorruptRecord) {
			t.Errorf("%s: err %v", name, err)
		}
		if len(got) != 1 {
			t.Errorf("%s: %d parts appended on error", name, len(got)-1)
		}
	}
	if n := recordMessages(withCount(0)); n != 1 {
		t.Errorf("recordMessages with count 0: %d", n)
	}
}

// The recovery's record check accepts batch records whose count fits and
// nothing else with an unknown marker.
func TestRecordCheckBatch(t *testing.T) {
	chk := recordCheck{min: rtMin, max: 1 << 20}
	rec := appendDiskRecord(nil, batchMsgs("m", 5, 20))
	if !chk.validHead(int32(len(rec)), rec[0]) || !validBatchCount(int32(len(rec)), 5) {
		t.Errorf("batch record refused")
	}
	if validBatchCount(int32(len(rec)), 0) || validBatchCount(int32(len(rec)), uint32(len(rec))) {
		t.Errorf("impossible count accepted")
	}
	if chk.validHead(batchMinLength-1, diskFormatBatch) || chk.validHead(100, 0x83) {
		t.Errorf("invalid head accepted")
	}
}
