package nsqd

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Batch disk record (version 2, nsqd/doc.go): several messages that go to
// the same disk queue at once (an MPUB or /mpub spilling over) are one
// go-diskqueue record instead of one each, so go-diskqueue's per-record
// cost (two goroutine hand-offs and a write(2) per Put, a read and a
// hand-off per read) is paid once per batch.
//
//	offset  size  field
//	0       1     format marker 0x82 (high bit set; low 7 bits = version 2)
//	1       4     message count N >= 1, BE uint32
//	5       ...   N entries: [4 bytes BE uint32 length L][L bytes: a version-1 record]
//
// The count comes first so that the messages of a queue can be counted
// from record headers alone (backend_recover.go). The reader
// (diskBackend's forwarder) hands the embedded version-1 records out one
// by one, so consumers only ever see version-1 and legacy records.
const (
	diskFormatBatch   = 0x82
	batchHeaderLength = 1 + 4
	batchEntryHeader  = 4
	// batchMinEntry is the smallest entry the reader accepts (a length
	// and a byte; what we write are version-1 records of 36 bytes or
	// more, but a clean shutdown may put back legacy records too)
	batchMinEntry = batchEntryHeader + 1
	// batchMinLength is the smallest batch record (one entry)
	batchMinLength = batchHeaderLength + batchMinEntry
	// batchSlack is what a batch may add to --max-body-size: the framing
	// of ~1,600 messages (39 bytes each). An MPUB with more framing than
	// that is written as several records.
	batchSlack = 64 << 10
)

// diskRecordLimit is the largest record a disk queue accepts (given to
// go-diskqueue and to crash recovery): a single message of --max-msg-size,
// or a batch of up to --max-body-size of bodies plus batchSlack.
func diskRecordLimit(maxMsgSize, maxBodySize int64) int32 {
	l := max(maxMsgSize+diskHeaderLengthV1, maxBodySize+batchSlack)
	return int32(min(l, math.MaxInt32-8))
}

// diskV1Size is the length of m's version-1 record.
func diskV1Size(m *Message) int { return diskHeaderLengthV1 + len(m.Body) }

// appendDiskV1 appends m's version-1 record (as encodeDisk) to b.
func appendDiskV1(b []byte, m *Message, deliverAt int64) []byte {
	b = append(b, diskFormatV1)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
	b = binary.BigEndian.AppendUint16(b, m.Attempts)
	b = append(b, m.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(deliverAt))
	return append(b, m.Body...)
}

// batchFits returns how many of msgs, from the first, make one record of
// at most limit bytes (at least 1: a single message is a version-1
// record, which always fits), and that record's size.
func batchFits(msgs []*Message, limit int) (n, size int) {
	size = batchHeaderLength
	for i, m := range msgs {
		s := batchEntryHeader + diskV1Size(m)
		if size+s > limit {
			if i <= 1 {
				return 1, diskV1Size(msgs[0])
			}
			return i, size
		}
		size += s
	}
	if len(msgs) == 1 {
		return 1, diskV1Size(msgs[0])
	}
	return len(msgs), size
}

// appendDiskRecord appends the record of msgs: a version-1 record for one
// message, a batch for more. Messages in a batch are never deferred.
func appendDiskRecord(b []byte, msgs []*Message) []byte {
	if len(msgs) == 1 {
		return appendDiskV1(b, msgs[0], 0)
	}
	b = append(b, diskFormatBatch)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msgs)))
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint32(b, uint32(diskV1Size(m)))
		b = appendDiskV1(b, m, 0)
	}
	return b
}

// encodeBatchRecords builds a batch record of version-1 (or legacy)
// records as they were read from disk (a clean shutdown puts back the
// messages of a batch the forwarder had not handed out yet).
func encodeBatchRecords(recs [][]byte) []byte {
	size := batchHeaderLength
	for _, r := range recs {
		size += batchEntryHeader + len(r)
	}
	b := make([]byte, 0, size)
	b = append(b, diskFormatBatch)
	b = binary.BigEndian.AppendUint32(b, uint32(len(recs)))
	for _, r := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

// recordMessages is how many messages a go-diskqueue record holds: the
// count of a batch record (as its header says, whether or not the rest
// is intact), else 1.
func recordMessages(b []byte) int64 {
	if len(b) >= batchHeaderLength && b[0] == diskFormatBatch {
		if n := binary.BigEndian.Uint32(b[1:5]); n >= 1 {
			return int64(n)
		}
	}
	return 1
}

// splitDiskBatch appends the embedded records of batch record b to dst as
// sub-slices of b (capacity limited to each record, so that no append can
// run into the next one). b must be a well-formed batch: marker, count
// >= 1, exactly count entries of at least one byte filling b.
func splitDiskBatch(b []byte, dst [][]byte) ([][]byte, error) {
	if len(b) < batchHeaderLength || b[0] != diskFormatBatch {
		return dst, fmt.Errorf("%w: not a batch record", errCorruptRecord)
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if n == 0 || uint64(n)*batchMinEntry > uint64(len(b)-batchHeaderLength) {
		return dst, fmt.Errorf("%w: batch of %d bytes cannot hold %d records", errCorruptRecord, len(b), n)
	}
	start := len(dst)
	off := batchHeaderLength
	for i := uint32(0); i < n; i++ {
		if len(b)-off < batchEntryHeader {
			return dst[:start], fmt.Errorf("%w: batch record %d of %d is cut off", errCorruptRecord, i, n)
		}
		l := binary.BigEndian.Uint32(b[off:])
		off += batchEntryHeader
		if l == 0 || uint64(l) > uint64(len(b)-off) {
			return dst[:start], fmt.Errorf("%w: batch record %d of %d has length %d, %d bytes left", errCorruptRecord, i, n, l, len(b)-off)
		}
		end := off + int(l)
		dst = append(dst, b[off:end:end])
		off = end
	}
	if off != len(b) {
		return dst[:start], fmt.Errorf("%w: %d bytes after the last of %d batch records", errCorruptRecord, len(b)-off, n)
	}
	return dst, nil
}
