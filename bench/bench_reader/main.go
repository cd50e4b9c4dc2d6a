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
package main

import (
	"bufio"
	"bytes"
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
	count = flag.Int64("count", 0, "stop once this many messages arrived in total; 0 = run for --runfor [extension]")
)

func main() {
	flag.Parse()
	log.SetPrefix("bench_reader: ")
	log.SetFlags(0)
	n := *conns
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}

	subCmd := []byte("SUB " + *topic + " " + *channel + "\n")
	rdyCmd := []byte("RDY " + strconv.Itoa(*rdy) + "\n")

	var (
		total    atomic.Int64 // per-worker sums, added as each worker ends
		arrived  atomic.Int64 // running count, kept only with --count
		stopping atomic.Bool
		endTime  atomic.Int64 // unix ns when --count was reached

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

	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
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
			var received int64
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
					copy(fin[4:20], data[benchutil.MsgIDOffset:benchutil.MsgIDOffset+benchutil.MsgIDLength])
					if _, err := w.Write(fin); err != nil {
						panic(err)
					}
					received++
					if *count > 0 && arrived.Add(1) == *count {
						endTime.Store(time.Now().UnixNano())
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
	if e := endTime.Load(); e > 0 {
		// --count reached: time the first *count messages
		d = time.Duration(e - t0.UnixNano())
		msgs = *count
	}
	benchutil.Result(os.Stdout, d, msgs, *size)
	benchutil.ClientCPU(os.Stderr, cpu0, total.Load())
	fmt.Fprintf(os.Stderr, "# %d connections, RDY %d\n", n, *rdy)
}
