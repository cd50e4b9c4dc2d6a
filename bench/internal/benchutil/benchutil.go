// Package benchutil holds what the bench tools share: the raw V2 wire
// pieces they need (magic, IDENTIFY without negotiation, frame reading),
// the --deadline start barrier and NSQ-style result lines.
//
// The tools speak the protocol over plain TCP sockets, not through go-nsq
// connection objects, so that the client side stays as cheap as possible
// and the broker is what gets measured.
package benchutil

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Frame types of the V2 protocol.
const (
	FrameTypeResponse int32 = 0
	FrameTypeError    int32 = 1
	FrameTypeMessage  int32 = 2
)

// Message frame data: [8 ts][2 attempts][16 id][body].
const (
	MsgIDOffset = 10
	MsgIDLength = 16
	MsgHeader   = 26
)

// MagicV2 is the protocol magic every V2 connection starts with.
var MagicV2 = []byte("  V2")

// Heartbeat is the data of a heartbeat response frame.
var Heartbeat = []byte("_heartbeat_")

// ErrFrame is returned by ReadFrame's callers for an E_* frame.
var ErrFrame = errors.New("error frame")

// IdentifyCommand renders "IDENTIFY\n[size][json]" with client_id and
// hostname set to name and no feature negotiation (nsqd answers "OK").
func IdentifyCommand(name string) []byte {
	return IdentifyCommandWith(map[string]any{"client_id": name, "hostname": name})
}

// IdentifyCommandWith renders "IDENTIFY\n[size][json]" with the given
// fields, e.g. "output_buffer_size": -1. Without "feature_negotiation"
// nsqd answers "OK".
func IdentifyCommandWith(fields map[string]any) []byte {
	body, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	b := append([]byte("IDENTIFY\n"), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(body)))
	return append(b, body...)
}

// PubCommand renders "PUB <topic>\n[size][body]".
func PubCommand(topic string, body []byte) []byte {
	b := append([]byte("PUB "+topic+"\n"), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(body)))
	return append(b, body...)
}

// MPubCommand renders "MPUB <topic>\n[size][count]([size][body])*" with
// count copies of body.
func MPubCommand(topic string, body []byte, count int) []byte {
	total := 4 + count*(4+len(body))
	b := make([]byte, 0, len("MPUB \n")+len(topic)+4+total)
	b = append(b, "MPUB "+topic+"\n"...)
	b = binary.BigEndian.AppendUint32(b, uint32(total))
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	for i := 0; i < count; i++ {
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
	}
	return b
}

// Reader reads frames from a buffered connection into a reused buffer.
type Reader struct {
	R   *bufio.Reader
	buf []byte
}

// NewReader wraps r with a bufio.Reader of size bytes.
func NewReader(r io.Reader, size int) *Reader {
	return &Reader{R: bufio.NewReaderSize(r, size), buf: make([]byte, 1024)}
}

// ReadFrame returns the next frame; data is valid until the next call.
func (r *Reader) ReadFrame() (int32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r.R, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := int(binary.BigEndian.Uint32(hdr[0:4]))
	typ := int32(binary.BigEndian.Uint32(hdr[4:8]))
	if size < 4 || size > 64<<20 {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	n := size - 4
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	data := r.buf[:n]
	if _, err := io.ReadFull(r.R, data); err != nil {
		return 0, nil, err
	}
	return typ, data, nil
}

// ExpectOK reads frames until a non-heartbeat response and fails unless it
// is "OK".
func (r *Reader) ExpectOK() error {
	for {
		typ, data, err := r.ReadFrame()
		if err != nil {
			return err
		}
		switch {
		case typ == FrameTypeResponse && string(data) == "OK":
			return nil
		case typ == FrameTypeResponse && string(data) == string(Heartbeat):
			continue
		case typ == FrameTypeError:
			return fmt.Errorf("%w: %s", ErrFrame, data)
		default:
			return fmt.Errorf("unexpected frame type %d: %q", typ, data)
		}
	}
}

// Dial connects to addr, sends the magic and an IDENTIFY as name and waits
// for its OK.
func Dial(addr, name string, readBufSize int) (net.Conn, *Reader, error) {
	return DialIdentify(addr, IdentifyCommand(name), readBufSize)
}

// DialIdentify connects to addr, sends the magic and the prebuilt IDENTIFY
// command identify (see IdentifyCommandWith) and waits for its OK.
func DialIdentify(addr string, identify []byte, readBufSize int) (net.Conn, *Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	cmd := append(append([]byte{}, MagicV2...), identify...)
	if _, err := conn.Write(cmd); err != nil {
		conn.Close()
		return nil, nil, err
	}
	rd := NewReader(conn, readBufSize)
	if err := rd.ExpectOK(); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("IDENTIFY: %w", err)
	}
	return conn, rd, nil
}

// WaitDeadline sleeps until the --deadline time ("2006-01-02 15:04:05",
// local time) so that tools on several hosts start together; "" returns
// at once.
func WaitDeadline(deadline string) {
	if deadline == "" {
		return
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05", deadline, time.Local)
	if err != nil {
		log.Fatalf("invalid --deadline %q: %s", deadline, err)
	}
	d := time.Until(t)
	log.Printf("sleeping until %s (%s)", t, d)
	time.Sleep(d)
}

// Result prints NSQ's result line: duration, MB/s, msg/s, µs/op.
func Result(w io.Writer, d time.Duration, msgs int64, size int) {
	if msgs == 0 || d <= 0 {
		fmt.Fprintf(w, "duration: %s - 0 messages\n", d)
		return
	}
	s := d.Seconds()
	fmt.Fprintf(w, "duration: %s - %.03fmb/s - %.03fops/s - %.03fus/op\n",
		d, float64(msgs*int64(size))/(1024*1024)/s, float64(msgs)/s,
		float64(d/time.Microsecond)/float64(msgs))
}

// ClientCPU prints, to w, the CPU time the tool itself used per message
// since cpu0 (so a reader of the results can tell whether the tool or the
// broker was the bottleneck).
func ClientCPU(w io.Writer, cpu0 time.Duration, msgs int64) {
	if msgs == 0 {
		return
	}
	used := ProcessCPU() - cpu0
	fmt.Fprintf(w, "# client CPU: %s, %.03fus/msg\n", used.Round(time.Millisecond),
		float64(used)/float64(time.Microsecond)/float64(msgs))
}

// RunWorkers drives a timed run of worker goroutines that have signalled
// ready: it waits for deadline, opens start, and closes stop after runfor
// (or as soon as every worker is done, e.g. a --count was reached), then
// waits for them. It returns the run's duration and the process CPU time
// at its start (for ClientCPU).
func RunWorkers(deadline string, runfor time.Duration, ready, done *sync.WaitGroup, start, stop chan struct{}) (time.Duration, time.Duration) {
	ready.Wait()
	WaitDeadline(deadline)
	t0 := time.Now()
	cpu0 := ProcessCPU()
	close(start)
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-time.After(runfor):
	case <-finished: // --count reached
	}
	close(stop)
	<-finished
	return time.Since(t0), cpu0
}

// RequestLoop is a worker's run: roundTrip (one request and its answer,
// worth per messages) again and again until stop is closed or, with
// count > 0, until the workers sharing claimed have claimed count
// messages. What it sent is added to total.
func RequestLoop(stop <-chan struct{}, claimed *atomic.Int64, count, per int64, total *atomic.Int64, roundTrip func()) {
	var sent int64
	defer func() { total.Add(sent) }()
	for {
		select {
		case <-stop:
			return
		default:
		}
		if count > 0 && claimed.Add(per)-per >= count {
			return
		}
		roundTrip()
		sent += per
	}
}

// ConsumeFrames is the read loop of a consuming connection: each message
// frame goes to onMessage (which buffers its answers, e.g. a FIN, on w), a
// heartbeat is answered with NOP, an error frame is fatal, and w is
// flushed whenever everything read so far is handled. It returns the read
// error that ends it (a deadline set to stop the run, say).
func ConsumeFrames(rd *Reader, w *bufio.Writer, onMessage func(data []byte)) error {
	for {
		typ, data, err := rd.ReadFrame()
		if err != nil {
			return err
		}
		switch typ {
		case FrameTypeMessage:
			if len(data) < MsgHeader {
				log.Fatalf("short message frame (%d bytes)", len(data))
			}
			onMessage(data)
		case FrameTypeResponse:
			if bytes.Equal(data, Heartbeat) {
				w.WriteString("NOP\n")
			}
		case FrameTypeError:
			log.Fatalf("consumer: error frame %s", data)
		}
		if rd.R.Buffered() == 0 && w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				log.Fatalf("consumer: %s", err)
			}
		}
	}
}

// WriteFIN buffers the FIN of message frame data on w.
func WriteFIN(w *bufio.Writer, data []byte) {
	var fin [4 + MsgIDLength + 1]byte
	copy(fin[:], "FIN ")
	copy(fin[4:], data[MsgIDOffset:MsgIDOffset+MsgIDLength])
	fin[len(fin)-1] = '\n'
	w.Write(fin[:])
}
