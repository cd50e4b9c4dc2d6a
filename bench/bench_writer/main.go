// Command bench_writer publishes fixed-size messages to one nsqd as fast as
// it can for --runfor and prints the rate (spec A-11).
//
// As NSQ's tool: raw TCP, one connection per GOMAXPROCS, magic + IDENTIFY
// (client_id/hostname "writer", no negotiation), then MPUB batches of
// --batch-size messages of --size bytes to --topic, reading one response
// per batch and panicking on an error frame.
//
// Extensions (off by default): --conns overrides the connection count,
// --pub sends one PUB per message and waits for each OK instead of MPUB,
// and --count stops after a number of messages (to preload a backlog).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

var (
	runfor     = flag.Duration("runfor", 10*time.Second, "duration of time to run")
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> to connect to nsqd")
	topic      = flag.String("topic", "sub_bench", "topic to receive messages on")
	size       = flag.Int("size", 200, "size of messages")
	batchSize  = flag.Int("batch-size", 200, "batch size of messages")
	deadline   = flag.String("deadline", "", "deadline to start the benchmark run")

	conns = flag.Int("conns", 0, "number of connections (default GOMAXPROCS) [extension]")
	pub   = flag.Bool("pub", false, "publish with one PUB per message, waiting for each OK, instead of MPUB [extension]")
	count = flag.Int64("count", 0, "stop after publishing this many messages in total (rounded up to whole batches); --runfor still bounds the run [extension]")
)

// awaitOK reads the answer to one command. A heartbeat (only after a 30 s
// stall) is answered with NOP and the OK still follows; an error frame panics.
func awaitOK(conn net.Conn, rd *benchutil.Reader) {
	for {
		typ, data, err := rd.ReadFrame()
		if err != nil {
			panic(err)
		}
		switch {
		case typ == benchutil.FrameTypeError:
			panic(string(data))
		case typ == benchutil.FrameTypeResponse && bytes.Equal(data, benchutil.Heartbeat):
			if _, err := conn.Write([]byte("NOP\n")); err != nil {
				panic(err)
			}
		case typ == benchutil.FrameTypeResponse && string(data) == "OK":
			return
		default:
			panic(fmt.Sprintf("unexpected frame type %d: %q", typ, data))
		}
	}
}

func main() {
	flag.Parse()
	log.SetPrefix("bench_writer: ")
	log.SetFlags(0)
	if *size <= 0 || *batchSize <= 0 {
		log.Fatal("--size and --batch-size must be > 0")
	}
	n := *conns
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}

	msg := bytes.Repeat([]byte{'a'}, *size)
	var cmd []byte
	perCmd := int64(1)
	if *pub {
		cmd = benchutil.PubCommand(*topic, msg)
	} else {
		cmd = benchutil.MPubCommand(*topic, msg, *batchSize)
		perCmd = int64(*batchSize)
	}

	var total, claimed atomic.Int64
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	stop := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			conn, rd, err := benchutil.Dial(*tcpAddress, "writer", 4096)
			if err != nil {
				log.Fatal(err)
			}
			defer conn.Close()
			ready.Done()
			<-start
			benchutil.RequestLoop(stop, &claimed, *count, perCmd, &total, func() {
				if _, err := conn.Write(cmd); err != nil {
					panic(err)
				}
				awaitOK(conn, rd)
			})
		}()
	}
	elapsed, cpu0 := benchutil.RunWorkers(*deadline, *runfor, &ready, &done, start, stop)
	benchutil.Result(os.Stdout, elapsed, total.Load(), *size)
	benchutil.ClientCPU(os.Stderr, cpu0, total.Load())
	if *pub {
		fmt.Fprintf(os.Stderr, "# %d connections, PUB\n", n)
	} else {
		fmt.Fprintf(os.Stderr, "# %d connections, MPUB of %d\n", n, *batchSize)
	}
}
