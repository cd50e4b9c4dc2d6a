package nsqd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/ournsq/nsq/internal/protocol"
)

// Reading the messages of one MPUB (TCP MPUB, HTTP /mpub binary and text).
//
// Bodies and Messages are carved from blocks: two allocations per block
// instead of two per message (the GC work they caused was a quarter of an
// MPUB's CPU). Blocks are sized from what is read, never from what a client
// declares, so a lying client gets nothing extra. When every message of an
// MPUB went to disk queues, nothing refers to its blocks any more (the disk
// records are copies) and they go back to a pool for the next MPUB: a
// backlog that spills to disk is then published without allocating.

// Block sizes: 64 KiB of bodies (~300 messages of 200 bytes), 256 Messages.
const (
	mpubBodyBlock   = 64 << 10
	mpubStructBlock = 256
	// mpubKeepBlock is the largest body block kept for reuse.
	mpubKeepBlock = 4 * mpubBodyBlock
)

// mpubScratch holds the first body block, Message block and pointer slice
// of an MPUB.
type mpubScratch struct {
	bodies  []byte    // full capacity
	structs []Message // full length
	msgs    []*Message
	free    bool // the blocks may be reused
}

// mpubScratchPool holds free scratch blocks for any connection: a pool
// rather than one per connection, so idle connections keep nothing and
// the GC may drop what is not used.
var mpubScratchPool = sync.Pool{New: func() any { return new(mpubScratch) }}

// textReaderPool holds the readers of HTTP /mpub bodies.
var textReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

// recycleMPUB gives the blocks of msgs back to the pool if onlyOnDisk says
// no queue holds any of them in memory; otherwise they stay the messages'.
func recycleMPUB(scratch *mpubScratch, msgs []*Message, onlyOnDisk bool) {
	if !onlyOnDisk || scratch.structs == nil || cap(scratch.bodies) > mpubKeepBlock {
		return
	}
	clear(msgs)
	scratch.msgs = msgs[:0]
	scratch.free = true
	mpubScratchPool.Put(scratch)
}

// mpubCarver hands out bodies and Messages from blocks, starting with the
// scratch blocks if they are free; the first blocks it uses become the
// scratch's (not free: the messages own them until recycleMPUB).
type mpubCarver struct {
	bodies  []byte
	structs []Message
	msgs    []*Message
	scratch *mpubScratch
}

func newMPUBCarver(scratch *mpubScratch, countHint int) *mpubCarver {
	c := &mpubCarver{scratch: scratch}
	if scratch.free {
		c.bodies, c.structs, c.msgs = scratch.bodies, scratch.structs, scratch.msgs
	}
	*scratch = mpubScratch{}
	if c.msgs == nil {
		c.msgs = make([]*Message, 0, max(1, min(countHint, 1024)))
	}
	return c
}

// body returns room for size bytes from the current block, or from a new
// block of blockSize bytes (at least size) when it has no room left.
func (c *mpubCarver) body(size int, blockSize int64) []byte {
	if len(c.bodies) < size {
		c.bodies = make([]byte, max(blockSize, int64(size)))
	}
	if c.scratch.bodies == nil {
		c.scratch.bodies = c.bodies
	}
	b := c.bodies[:size:size]
	c.bodies = c.bodies[size:]
	return b
}

// add appends a message with body; a new Message block has room for
// structBlock messages (1..mpubStructBlock).
func (c *mpubCarver) add(body []byte, structBlock int) {
	if len(c.structs) == 0 {
		c.structs = make([]Message, max(1, min(structBlock, mpubStructBlock)))
	}
	if c.scratch.structs == nil {
		c.scratch.structs = c.structs
	}
	m := &c.structs[0]
	c.structs = c.structs[1:]
	// field by field: a block from the pool is not zero, and a whole
	// struct store (zeroing, write barriers) was a tenth of an MPUB's CPU
	m.Body, m.ref = body, nil
	m.Attempts, m.deferred, m.deliverAt = 0, 0, 0
	m.clientID, m.pri, m.index, m.deliveredAt = 0, 0, 0, 0
	m.sharedBody, m.inBatch = true, true
	c.msgs = append(c.msgs, m)
}

// done stamps the messages (IDs and timestamps: one clock read per MPUB,
// once the whole body is in) and returns them.
func (c *mpubCarver) done(topic *Topic) []*Message {
	c.scratch.msgs = c.msgs
	topic.stampNew(c.msgs)
	return c.msgs
}

// readMPUBPooled is readMPUB with blocks from the pool; pass what it
// returns, once the messages are put, to recycleMPUB.
func readMPUBPooled(r io.Reader, topic *Topic, maxMsgSize, maxBodySize int64) ([]*Message, *mpubScratch, *protocol.ClientError) {
	scratch := mpubScratchPool.Get().(*mpubScratch)
	msgs, cerr := readMPUBInto(r, topic, maxMsgSize, maxBodySize, scratch)
	return msgs, scratch, cerr
}

// readMPUB reads [int32 count]([int32 size][body])*. As in NSQ the outer
// body size is only range-checked, but the bodies together may not
// exceed --max-body-size, so one MPUB can never make us hold more than that.
//
// TCP MPUB and HTTP /mpub?binary=true share it; HTTP maps the codes.
func readMPUB(r io.Reader, topic *Topic, maxMsgSize, maxBodySize int64) ([]*Message, *protocol.ClientError) {
	return readMPUBInto(r, topic, maxMsgSize, maxBodySize, &mpubScratch{})
}

func readMPUBInto(r io.Reader, topic *Topic, maxMsgSize, maxBodySize int64, scratch *mpubScratch) ([]*Message, *protocol.ClientError) {
	fatal := func(code, format string, args ...interface{}) *protocol.ClientError {
		return protocol.NewFatal(code, fmt.Sprintf(format, args...))
	}
	num, err := protocol.ReadInt32(r)
	if err != nil {
		return nil, fatal("E_BAD_BODY", "MPUB failed to read message count")
	}
	// each message needs at least 4 bytes of size and 1 of body
	maxMessages := (maxBodySize - 4) / 5
	if num <= 0 || int64(num) > maxMessages {
		return nil, fatal("E_BAD_BODY", "MPUB invalid message count %d", num)
	}

	c := newMPUBCarver(scratch, int(num))
	var total int64
	for i := int32(0); i < num; i++ {
		size, err := protocol.ReadInt32(r)
		if err != nil {
			return nil, fatal("E_BAD_MESSAGE", "MPUB failed to read message(%d) body size", i)
		}
		if size <= 0 {
			return nil, fatal("E_BAD_MESSAGE", "MPUB invalid message(%d) body size %d", i, size)
		}
		if int64(size) > maxMsgSize {
			return nil, fatal("E_BAD_MESSAGE", "MPUB message too big %d > %d", size, maxMsgSize)
		}
		total += int64(size)
		if total > maxBodySize {
			return nil, fatal("E_BAD_BODY", "MPUB body too big %d > %d", total, maxBodySize)
		}
		// a new block has room for the rest if they are the same size, at
		// most mpubBodyBlock and what --max-body-size still allows
		body := c.body(int(size), min(int64(size)*int64(num-i), mpubBodyBlock, maxBodySize-total+int64(size)))
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fatal("E_BAD_MESSAGE", "MPUB failed to read message body")
		}
		c.add(body, int(num-i))
	}
	return c.done(topic), nil
}

// readTextMPUB splits a body on '\n' (a '\r' stays part of the message) and
// skips empty lines. At most maxBodySize+1 bytes are ever read.
func readTextMPUB(body io.Reader, topic *Topic, maxMsgSize, maxBodySize int64) ([]*Message, error) {
	return readTextMPUBInto(body, -1, topic, maxMsgSize, maxBodySize, &mpubScratch{})
}

// readTextMPUBPooled is readTextMPUB with blocks from the pool; sizeHint
// is the declared body length (-1 if unknown), used only to size blocks
// no larger than what is left of it.
func readTextMPUBPooled(body io.Reader, sizeHint int64, topic *Topic, maxMsgSize, maxBodySize int64) ([]*Message, *mpubScratch, error) {
	scratch := mpubScratchPool.Get().(*mpubScratch)
	msgs, err := readTextMPUBInto(body, sizeHint, topic, maxMsgSize, maxBodySize, scratch)
	return msgs, scratch, err
}

func readTextMPUBInto(body io.Reader, sizeHint int64, topic *Topic, maxMsgSize, maxBodySize int64, scratch *mpubScratch) ([]*Message, error) {
	r := textReaderPool.Get().(*bufio.Reader)
	r.Reset(io.LimitReader(body, maxBodySize+1))
	defer func() {
		r.Reset(nil)
		textReaderPool.Put(r)
	}()
	c := newMPUBCarver(scratch, 64)
	var total int64
	var long []byte // a line longer than the reader's buffer
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		total += int64(len(line))
		if total > maxBodySize {
			return nil, httpErr(413, "BODY_TOO_BIG")
		}
		if err != nil && err != io.EOF {
			return nil, httpErr(500, "INTERNAL_ERROR")
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		if int64(len(line)) > maxMsgSize {
			return nil, httpErr(413, "MSG_TOO_BIG")
		}
		if n := len(line); n > 0 {
			block, structs := int64(mpubBodyBlock), mpubStructBlock/4
			if left := sizeHint - total; sizeHint >= 0 {
				// what is left of the declared length, this line included
				block = min(block, max(left, 0)+int64(n))
				structs = int(max(left, 0)/int64(n+1)) + 1
			}
			b := c.body(n, min(block, maxBodySize-total+int64(n)))
			copy(b, line)
			c.add(b, structs)
		}
		if err == io.EOF {
			return c.done(topic), nil
		}
	}
}
