// Package nsqd is the message broker: topics, channels, in-flight and
// deferred queues, disk spill-over and the TCP protocol V2.
//
// # Goroutines
//
// One accept loop; per connection an ioLoop (reads and executes commands)
// and a messagePump (delivers messages, heartbeats, flushes); per topic a
// messagePump (fans messages out to channels); per disk queue go-diskqueue's
// ioLoop and our forwarder (backend_disk.go), and while spilled messages
// wait for their write-behind, a timer's goroutine (backend_writebehind.go);
// one queueScanLoop with its
// worker pool (in-flight timeouts and deferred messages); one metadata
// writer (nsqd.dat); one health probe (health.go, idle while healthy).
// A message for an idle consumer with output buffering off may skip its
// pump: the publisher's goroutine delivers it (direct.go).
// Exit stops them in this order: listener, connections, metadata, topics
// (flushing memory, in-flight and deferred messages to disk), loops,
// data-path lock.
//
// # On-disk message record
//
// Topic and channel queues spill over to go-diskqueue, which frames each
// record as [int32 BE length][record]. The record is:
//
//	offset  size  field
//	0       1     format marker 0x81 (high bit set; low 7 bits = version 1)
//	1       8     timestamp, ns since the epoch, BE int64
//	9       2     attempts, BE uint16
//	11      16    message ID, 16 ASCII hex characters
//	27      8     deliver-at, ns since the epoch, BE int64; 0 = deliver now
//	35      n     body (1 .. --max-msg-size bytes)
//
// NSQ's own record (D-DISK-02) is the same without the marker and the
// deliver-at field. Its first byte is the high byte of a positive
// timestamp, so it never has the high bit set: records written by NSQ are
// still read (as "deliver now"), which lets an existing data path be
// taken over. A marker with another version is a corrupt record.
//
// Several messages that go to one queue at once (the part of an MPUB or
// HTTP /mpub that spills over to a channel's or a topic's disk queue) are
// one record, version 2 (message_batch.go):
//
//	offset  size  field
//	0       1     format marker 0x82 (high bit set; low 7 bits = version 2)
//	1       4     message count N >= 1, BE uint32
//	5       ...   N entries: [4 bytes BE uint32 length L][L bytes: a version-1 record]
//
// A batch holds at most max(--max-msg-size + 35, --max-body-size + 64 KiB)
// bytes, the record size limit the queues are opened with; a larger MPUB
// is written as several records. Single messages (PUB, DPUB, requeues,
// flushes) stay version-1 records. The reader hands the embedded records
// out one by one, so consumers only see version-1 and legacy records.
// Depth counts messages, not records. A batch record is finished when all
// its messages are; after a crash all of them may come again. go-diskqueue
// counts records, so --sync-every counts a batch as one write. This
// nsqd's older versions (and NSQ) cannot read version 2.
//
// Next to go-diskqueue's files each queue has <name>.diskqueue.cursor.dat
// (the oldest unfinished record, and how many messages more than records
// the queue holds from there, for the depth after a restart) and, while
// records in it are unfinished, hard links <name>.diskqueue.NNNNNN.hold to
// segments: crash recovery, backend_disk.go, backend_recover.go and
// docs/robustness-crash.md.
//
// deliver-at is what NSQ lacks: a DPUB that overflows to disk, and
// deferred messages flushed at shutdown, keep their due time. When a client
// pump or the topic pump reads a record that is not due yet, it goes to the
// channel's deferred queue instead of being delivered.
package nsqd
