// Command bench_lateness measures how late nsqd hands a message back: after
// its in-flight timeout expires (--mode=timeout) or after a DPUB deferral
// (--mode=defer).
//
// One consumer connection (magic, IDENTIFY with feature negotiation, SUB,
// RDY --rdy) and one publisher connection, raw V2 over TCP with prebuilt
// command buffers. The publisher sends --count messages of --size bytes,
// evenly paced over --spread, one command at a time (each waits for its
// OK). A body carries a per-run nonce and the message's index, so every
// delivery is matched to its publish without a map.
//
//   - timeout: the consumer never FINs a first delivery. For each message it
//     records the first delivery time t0 (attempts 1) and the redelivery time
//     t1 (attempts 2), FINs the redelivery, and lateness = t1 - (t0 +
//     msg-timeout). IDENTIFY only accepts msg_timeout >= 1000 ms, so a
//     shorter --msg-timeout (the default 500ms) must be nsqd's own
//     --msg-timeout: the tool then sends no msg_timeout and checks nsqd's
//     IDENTIFY response.
//   - defer: every message is a DPUB with --defer; the consumer FINs each
//     delivery and lateness = delivery - (time the DPUB was written + defer).
//     The DPUB's round trip (write to OK) is printed too: nsqd starts the
//     deferral somewhere inside it.
//
// Both times are taken on the client as frames are read, so they include
// nsqd's output buffering. The consumer therefore asks for an unbuffered
// connection by default (--output-buffer-size=-1); with nsqd's default
// buffering (--output-buffer-size=0) a delivery can sit up to 250 ms in the
// buffer, which adds up to 250 ms in defer mode and, in timeout mode,
// mostly cancels out between t0 and t1 and hides the real lateness inside
// a flush interval. Lateness can be negative (early); the minimum is
// printed. Messages that are not back within --grace after the last one
// was due are counted as missing, not waited for.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

var (
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> to connect to nsqd")
	mode       = flag.String("mode", "timeout", "timeout (redelivery after msg-timeout) or defer (DPUB)")
	topic      = flag.String("topic", "lateness_bench", "topic to publish to")
	channel    = flag.String("channel", "ch", "channel to consume from")
	count      = flag.Int("count", 2000, "number of messages")
	spread     = flag.Duration("spread", 2*time.Second, "publish the messages evenly over this long")
	size       = flag.Int("size", 200, "size of messages (at least 16)")
	msgTimeout = flag.Duration("msg-timeout", 500*time.Millisecond, "in-flight timeout (timeout mode); below 1s it must be nsqd's --msg-timeout")
	deferFor   = flag.Duration("defer", 500*time.Millisecond, "DPUB deferral (defer mode), whole milliseconds")
	rdy        = flag.Int("rdy", 2500, "RDY count of the consumer")
	grace      = flag.Duration("grace", 5*time.Second, "how long to wait for stragglers after the last message was due back")
	settle     = flag.Duration("settle", 0, "wait this long after SUB before publishing (NSQ's nsqd scans a new channel only after its 5s refresh)")
	obufSize   = flag.Int("output-buffer-size", -1, "IDENTIFY output_buffer_size of the consumer: -1 = unbuffered, 0 = nsqd's default (16384)")
	obufTime   = flag.Duration("output-buffer-timeout", 0, "IDENTIFY output_buffer_timeout of the consumer: 0 = nsqd's default (250ms)")
)

// identifyResponse holds the fields of nsqd's IDENTIFY answer we check.
type identifyResponse struct {
	MaxRdyCount         int   `json:"max_rdy_count"`
	MsgTimeout          int64 `json:"msg_timeout"`
	OutputBufferSize    int   `json:"output_buffer_size"`
	OutputBufferTimeout int64 `json:"output_buffer_timeout"`
}

// times are durations since the run's base time; 0 means "not seen".
type record struct {
	written, ok time.Duration // publish written / its OK read
	first       time.Duration // delivery with attempts 1
	second      time.Duration // delivery with attempts 2 (timeout mode)
}

func main() {
	flag.Parse()
	log.SetPrefix("bench_lateness: ")
	log.SetFlags(0)
	timeoutMode := false
	switch *mode {
	case "timeout":
		timeoutMode = true
	case "defer":
		if *deferFor%time.Millisecond != 0 || *deferFor < 0 {
			log.Fatalf("--defer must be a non-negative whole number of milliseconds")
		}
	default:
		log.Fatalf("--mode must be timeout or defer, not %q", *mode)
	}
	if *count <= 0 || *size < 16 || *spread < 0 {
		log.Fatalf("need --count > 0, --size >= 16 and --spread >= 0")
	}

	var nonce [8]byte
	rand.Read(nonce[:])
	cmds := buildCommands(timeoutMode, nonce)
	recs := make([]record, *count)

	// consumer
	cconn, crd, ident := identify()
	if timeoutMode && time.Duration(ident.MsgTimeout)*time.Millisecond != *msgTimeout {
		hint := ""
		if *msgTimeout < time.Second {
			hint = fmt.Sprintf(" (IDENTIFY accepts only 1000 ms and up: start nsqd with --msg-timeout=%s)", *msgTimeout)
		}
		log.Fatalf("nsqd's msg_timeout for this consumer is %dms, not %s%s", ident.MsgTimeout, *msgTimeout, hint)
	}
	rdyCount := *rdy
	if ident.MaxRdyCount > 0 && rdyCount > ident.MaxRdyCount {
		log.Printf("--rdy %d is above nsqd's max_rdy_count %d: using %d", rdyCount, ident.MaxRdyCount, ident.MaxRdyCount)
		rdyCount = ident.MaxRdyCount
	}
	if timeoutMode && rdyCount < *count {
		log.Printf("warning: RDY %d < --count %d: later first deliveries wait for redeliveries to be FINed", rdyCount, *count)
	}
	if _, err := cconn.Write([]byte("SUB " + *topic + " " + *channel + "\n")); err != nil {
		log.Fatal(err)
	}
	if err := crd.ExpectOK(); err != nil {
		log.Fatalf("SUB: %s", err)
	}
	if _, err := cconn.Write([]byte("RDY " + strconv.Itoa(rdyCount) + "\n")); err != nil {
		log.Fatal(err)
	}

	// publisher
	pconn, prd, err := benchutil.Dial(*tcpAddress, "lateness_pub", 4096)
	if err != nil {
		log.Fatalf("publisher: %s", err)
	}
	defer pconn.Close()

	time.Sleep(*settle)
	base := time.Now()
	var (
		done  = make(chan struct{})
		cwg   sync.WaitGroup
		stats consumerStats
	)
	cwg.Add(1)
	go func() {
		defer cwg.Done()
		stats = consume(cconn, crd, base, nonce, recs, timeoutMode, done)
	}()

	interval := time.Duration(0)
	if *count > 1 {
		interval = *spread / time.Duration(*count-1)
	}
	for i, cmd := range cmds {
		if d := time.Until(base.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		recs[i].written = time.Since(base)
		if _, err := pconn.Write(cmd); err != nil {
			log.Fatalf("publish: %s", err)
		}
		if err := prd.ExpectOK(); err != nil {
			log.Fatalf("publish: %s", err)
		}
		recs[i].ok = time.Since(base)
	}
	lastPub := time.Now()
	pubTook := lastPub.Sub(base)

	after := *deferFor
	if timeoutMode {
		after = *msgTimeout
	}
	wait := after + *grace
	select {
	case <-done:
	case <-time.After(time.Until(lastPub.Add(wait))):
	}
	cconn.SetReadDeadline(time.Now())
	cwg.Wait()
	cconn.Close()

	report(timeoutMode, recs, stats, ident, rdyCount, pubTook, wait)
}

// buildCommands renders every PUB (timeout mode) or DPUB (defer mode); the
// body is [8 nonce][8 BE index][padding].
func buildCommands(timeoutMode bool, nonce [8]byte) [][]byte {
	body := make([]byte, *size)
	for i := 16; i < len(body); i++ {
		body[i] = 'a' + byte(i%26)
	}
	copy(body, nonce[:])
	cmds := make([][]byte, *count)
	for i := range cmds {
		binary.BigEndian.PutUint64(body[8:16], uint64(i))
		if timeoutMode {
			cmds[i] = benchutil.PubCommand(*topic, body)
			continue
		}
		b := []byte("DPUB " + *topic + " " + strconv.FormatInt(int64(*deferFor/time.Millisecond), 10) + "\n")
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		cmds[i] = append(b, body...)
	}
	return cmds
}

// identify connects the consumer: magic, IDENTIFY with feature negotiation
// (and msg_timeout when IDENTIFY can carry it), and returns nsqd's answer.
func identify() (net.Conn, *benchutil.Reader, identifyResponse) {
	conn, err := net.DialTimeout("tcp", *tcpAddress, 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	req := map[string]any{
		"client_id":           "lateness",
		"hostname":            "lateness",
		"feature_negotiation": true,
	}
	if *mode == "timeout" && *msgTimeout >= time.Second {
		req["msg_timeout"] = *msgTimeout / time.Millisecond
	}
	if *obufSize != 0 {
		req["output_buffer_size"] = *obufSize
	}
	if *obufTime != 0 {
		req["output_buffer_timeout"] = *obufTime / time.Millisecond
	}
	js, _ := json.Marshal(req)
	cmd := append([]byte{}, benchutil.MagicV2...)
	cmd = append(cmd, "IDENTIFY\n"...)
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(len(js)))
	cmd = append(cmd, js...)
	if _, err := conn.Write(cmd); err != nil {
		log.Fatal(err)
	}
	rd := benchutil.NewReader(conn, 64*1024)
	for {
		typ, data, err := rd.ReadFrame()
		if err != nil {
			log.Fatalf("IDENTIFY: %s", err)
		}
		if typ == benchutil.FrameTypeResponse && bytes.Equal(data, benchutil.Heartbeat) {
			continue
		}
		if typ != benchutil.FrameTypeResponse {
			log.Fatalf("IDENTIFY: %s", data)
		}
		var resp identifyResponse
		if err := json.Unmarshal(data, &resp); err != nil {
			log.Fatalf("IDENTIFY: response %q: %s", data, err)
		}
		return conn, rd, resp
	}
}

type consumerStats struct {
	stale int // deliveries from an earlier run (other nonce) or not ours
	extra int // deliveries beyond the ones measured (attempts > 2, ...)
}

// consume reads deliveries until its read deadline is set, recording when
// each message arrives. It closes done once every message has arrived as
// the mode needs (redelivered, or delivered).
func consume(conn net.Conn, rd *benchutil.Reader, base time.Time, nonce [8]byte, recs []record, timeoutMode bool, done chan struct{}) consumerStats {
	var st consumerStats
	w := bufio.NewWriterSize(conn, 16*1024)
	complete := 0
	err := benchutil.ConsumeFrames(rd, w, func(data []byte) {
		now := time.Since(base)
		attempts := binary.BigEndian.Uint16(data[8:10])
		body := data[benchutil.MsgHeader:]
		if len(body) < 16 || !bytes.Equal(body[:8], nonce[:]) {
			st.stale++
			benchutil.WriteFIN(w, data)
			return
		}
		idx := binary.BigEndian.Uint64(body[8:16])
		if idx >= uint64(len(recs)) {
			st.stale++
			benchutil.WriteFIN(w, data)
			return
		}
		r := &recs[idx]
		switch {
		case attempts == 1 && r.first == 0:
			r.first = now
			if !timeoutMode { // in timeout mode it is left to time out
				benchutil.WriteFIN(w, data)
				complete++
			}
		case attempts == 2 && timeoutMode && r.second == 0:
			r.second = now
			benchutil.WriteFIN(w, data)
			complete++
		default:
			st.extra++
			benchutil.WriteFIN(w, data)
		}
		if complete == len(recs) && done != nil {
			close(done)
			done = nil
		}
	})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		log.Fatalf("consumer: %s", err)
	}
	return st
}

func report(timeoutMode bool, recs []record, st consumerStats, ident identifyResponse, rdyCount int, pubTook, wait time.Duration) {
	var late, rtt []time.Duration
	delivered, missing := 0, 0
	for _, r := range recs {
		rtt = append(rtt, r.ok-r.written)
		if r.first != 0 {
			delivered++
		}
		switch {
		case timeoutMode && r.first != 0 && r.second != 0:
			late = append(late, r.second-r.first-*msgTimeout)
		case !timeoutMode && r.first != 0:
			late = append(late, r.first-r.written-*deferFor)
		default:
			missing++
		}
	}
	obuf := fmt.Sprintf("output buffer %d B / %dms", ident.OutputBufferSize, ident.OutputBufferTimeout)
	if ident.OutputBufferSize <= 1 {
		obuf = "output unbuffered"
	}
	if timeoutMode {
		fmt.Printf("mode timeout: msg-timeout %s, %d PUBs over %s, %d-byte messages, RDY %d, %s\n",
			*msgTimeout, len(recs), pubTook.Round(time.Millisecond), *size, rdyCount, obuf)
		fmt.Println("lateness = redelivery - (first delivery + msg-timeout), both as read by the consumer")
	} else {
		fmt.Printf("mode defer: defer %s, %d DPUBs over %s, %d-byte messages, RDY %d, %s\n",
			*deferFor, len(recs), pubTook.Round(time.Millisecond), *size, rdyCount, obuf)
		fmt.Println("lateness = delivery - (DPUB written + defer)")
		slices.Sort(rtt)
		fmt.Printf("DPUB write to OK: p50 %s, p99 %s, max %s\n",
			ms(pct(rtt, 0.50)), ms(pct(rtt, 0.99)), ms(rtt[len(rtt)-1]))
	}
	if len(late) > 0 {
		slices.Sort(late)
		fmt.Printf("lateness: %d messages, min %s, p50 %s, p90 %s, p99 %s, max %s\n",
			len(late), ms(late[0]), ms(pct(late, 0.50)), ms(pct(late, 0.90)),
			ms(pct(late, 0.99)), ms(late[len(late)-1]))
	} else {
		fmt.Println("lateness: 0 messages")
	}
	what := "delivered"
	if timeoutMode {
		what = "redelivered"
	}
	fmt.Printf("missing: %d of %d not %s within %s after the last publish (%d never delivered at all)\n",
		missing, len(recs), what, wait, len(recs)-delivered)
	if st.extra > 0 || st.stale > 0 {
		fmt.Printf("# %d extra deliveries (attempts > 2 or repeats), %d from another run\n", st.extra, st.stale)
	}
}

// pct is the nearest-rank percentile of sorted s.
func pct(s []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// ms formats d in milliseconds with microsecond resolution.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64) + "ms"
}
