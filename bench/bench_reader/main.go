// Command bench_reader consumes from one nsqd channel as fast as it can for
// --runfor and prints the rate (spec A-12).
//
// As NSQ's tool: raw TCP, one connection per GOMAXPROCS, IDENTIFY (no
// negotiation), "SUB <topic> <channel>", "RDY 2500" (NSQ's default
// --max-rdy-count: an nsqd with a lower one refuses it and the tool dies),
// the two OKs, then a FIN for every message. FINs are buffered and flushed
// whenever the tool has read everything nsqd sent so far, so they go out
// in batches without ever holding one back while waiting for more input.
// Heartbeats are answered with NOP; an error frame panics.
//
// Extensions (off by default): --conns overrides the connection count,
// --rdy the RDY count, and --count stops once that many messages have
// arrived (timing a drain of a known backlog; --runfor still bounds the run).
//
// --channels=N consumes N channels of the topic, named <channel>0 ..
// <channel>N-1 (just <channel> when N is 1), each with --conns
// connections: a fan-out. --count is then per channel (the run ends when
// every channel has had that many) and the result counts the messages of
// all channels.
//
// --req=DURATION answers every first delivery (attempts == 1) with
// "REQ <id> <ms>" instead of FIN and FINs redeliveries (attempts >= 2), so
// every message goes through nsqd twice. The result line and --count then
// count FINed messages (each one REQed, redelivered and FINed), and the
// deliveries per second are printed on stderr.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

var (
	runfor     = flag.Duration("runfor", 10*time.Second, "duration of time to run")
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> to connect to nsqd")
	size       = flag.Int("size", 200, "size of messages")
	topic      = flag.String("topic", "sub_bench", "topic to receive messages on")
	channel    = flag.String("channel", "ch", "channel to receive messages on")
	deadline   = flag.String("deadline", "", "deadline to start the benchmark run")

	rdy   = flag.Int("rdy", 2500, "RDY count per connection [extension]")
	conns = flag.Int("conns", 0, "number of connections (default GOMAXPROCS) [extension]")
	count = flag.Int64("count", 0, "stop once this many messages arrived in total (per channel with --channels; FINed ones with --req); 0 = run for --runfor [extension]")

	channels = flag.Int("channels", 1, "consume this many channels <channel>0..<channel>N-1 (just <channel> for 1), each with --conns connections [extension]")
	req      reqFlag
)

func init() {
	flag.Var(&req, "req", "REQ first deliveries with this timeout (e.g. 0ms, 10ms) and FIN redeliveries; off by default [extension]")
}

// reqFlag is --req: a duration that may be 0, and off unless given.
type reqFlag struct {
	set bool
	d   time.Duration
}

func (r *reqFlag) String() string {
	if r == nil || !r.set {
		return ""
	}
	return r.d.String()
}

func (r *reqFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if d < 0 {
		return errors.New("must not be negative")
	}
	r.set, r.d = true, d
	return nil
}

// worker counts, shared only in --req mode (for the deliveries at the end
// of a --count run); padded so that workers do not share cache lines
type workerStats struct {
	delivered atomic.Int64
	_         [56]byte
}

func main() {
	flag.Parse()
	log.SetPrefix("bench_reader: ")
	log.SetFlags(0)
	n := *conns
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	if *channels < 1 {
		log.Fatal("--channels must be >= 1")
	}
	names := []string{*channel}
	if *channels > 1 {
		names = names[:0]
		for c := 0; c < *channels; c++ {
			names = append(names, *channel+strconv.Itoa(c))
		}
	}

	rdyCmd := []byte("RDY " + strconv.Itoa(*rdy) + "\n")
	reqTmpl := []byte("REQ 0123456789abcdef " + strconv.FormatInt(req.d.Milliseconds(), 10) + "\n")

	var (
		total    atomic.Int64                       // per-worker sums, added as each worker ends
		arrived  = make([]atomic.Int64, len(names)) // running count per channel, kept only with --count
		chDone   atomic.Int64                       // channels that reached --count
		stopping atomic.Bool
		endTime  atomic.Int64 // unix ns when --count was reached

		stats          = make([]workerStats, n*len(names))
		deliveredAtEnd atomic.Int64 // --req: deliveries when --count was reached

		mu      sync.Mutex
		netConn []net.Conn

		ready, done sync.WaitGroup
	)
	start := make(chan struct{})
	var t0 time.Time
	stopAll := func() {
		if stopping.Swap(true) {
			return
		}
		mu.Lock()
		for _, c := range netConn {
			c.SetReadDeadline(time.Now())
		}
		mu.Unlock()
	}

	for i := 0; i < n*len(names); i++ {
		ready.Add(1)
		done.Add(1)
		ch := i / n
		subCmd := []byte("SUB " + *topic + " " + names[ch] + "\n")
		ws := &stats[i]
		go func() {
			defer done.Done()
			conn, rd, err := benchutil.Dial(*tcpAddress, "reader", 64*1024)
			if err != nil {
				log.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(subCmd); err != nil {
				log.Fatal(err)
			}
			if err := rd.ExpectOK(); err != nil {
				log.Fatalf("SUB: %s", err)
			}
			mu.Lock()
			netConn = append(netConn, conn)
			mu.Unlock()
			ready.Done()
			<-start

			conn.SetReadDeadline(t0.Add(*runfor))
			w := bufio.NewWriterSize(conn, 64*1024)
			if _, err := w.Write(rdyCmd); err != nil {
				panic(err)
			}
			if err := w.Flush(); err != nil {
				panic(err)
			}
			fin := []byte("FIN 0123456789abcdef\n")
			reqCmd := append([]byte(nil), reqTmpl...)
			var received int64 // FINed with --req, else delivered
			defer func() { total.Add(received) }()
			for {
				typ, data, err := rd.ReadFrame()
				if err != nil {
					var ne net.Error
					if stopping.Load() || (errors.As(err, &ne) && ne.Timeout()) {
						return
					}
					panic(err)
				}
				switch typ {
				case benchutil.FrameTypeMessage:
					if len(data) < benchutil.MsgHeader {
						panic(fmt.Sprintf("short message frame (%d bytes)", len(data)))
					}
					id := data[benchutil.MsgIDOffset : benchutil.MsgIDOffset+benchutil.MsgIDLength]
					if req.set {
						ws.delivered.Add(1)
						if attempts := binary.BigEndian.Uint16(data[8:10]); attempts < 2 {
							copy(reqCmd[4:20], id)
							if _, err := w.Write(reqCmd); err != nil {
								panic(err)
							}
							break
						}
					}
					copy(fin[4:20], id)
					if _, err := w.Write(fin); err != nil {
						panic(err)
					}
					received++
					if *count > 0 && arrived[ch].Add(1) == *count && chDone.Add(1) == int64(len(names)) {
						endTime.Store(time.Now().UnixNano())
						if req.set {
							var d int64
							for i := range stats {
								d += stats[i].delivered.Load()
							}
							deliveredAtEnd.Store(d)
						}
						stopAll()
					}
				case benchutil.FrameTypeResponse:
					if bytes.Equal(data, benchutil.Heartbeat) {
						if _, err := w.Write([]byte("NOP\n")); err != nil {
							panic(err)
						}
					}
				case benchutil.FrameTypeError:
					panic(string(data))
				}
				// everything nsqd sent so far is handled: send the FINs
				if rd.R.Buffered() == 0 && w.Buffered() > 0 {
					if err := w.Flush(); err != nil {
						if stopping.Load() {
							return
						}
						panic(err)
					}
				}
			}
		}()
	}
	ready.Wait()
	benchutil.WaitDeadline(*deadline)
	t0 = time.Now()
	cpu0 := benchutil.ProcessCPU()
	close(start)
	done.Wait()
	d := time.Since(t0)
	msgs := total.Load()
	var delivered int64
	for i := range stats {
		delivered += stats[i].delivered.Load()
	}
	if e := endTime.Load(); e > 0 {
		// --count reached (on every channel): time the first *count
		// messages of each channel
		d = time.Duration(e - t0.UnixNano())
		msgs = *count * int64(len(names))
		delivered = deliveredAtEnd.Load()
	}
	benchutil.Result(os.Stdout, d, msgs, *size)
	benchutil.ClientCPU(os.Stderr, cpu0, total.Load())
	if len(names) == 1 {
		fmt.Fprintf(os.Stderr, "# %d connections, RDY %d\n", n, *rdy)
	} else {
		fmt.Fprintf(os.Stderr, "# %d channels %s..%s, %d connections each, RDY %d\n",
			len(names), names[0], names[len(names)-1], n, *rdy)
	}
	if req.set {
		fmt.Fprintf(os.Stderr, "# REQ %s on first delivery, FIN on redelivery: %d deliveries in %s, %.03f deliveries/s\n",
			req.d, delivered, d, float64(delivered)/d.Seconds())
	}
}
