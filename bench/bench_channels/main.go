// Command bench_channels stresses channel and connection scaling (spec
// it opens --num consumer connections, each subscribed to its own
// channel ("ch0", "ch1", ...) of one topic, FINs whatever arrives and
// answers heartbeats with NOP. Run bench_writer beside it to push messages
// through the fan-out; at the end it prints how long the connections took
// to set up and the delivery rate summed over all channels.
//
// Raw TCP like the other bench tools: IDENTIFY (no negotiation), SUB, RDY.
// Extensions: --topic, --rdy, --runfor (0 = until interrupted) and
// --dial-concurrency.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

var (
	num        = flag.Int("num", 10000, "num channels")
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> to connect to nsqd")
	deadline   = flag.String("deadline", "", "deadline to start the benchmark run")

	topic           = flag.String("topic", "sub_bench", "topic to subscribe to [extension]")
	rdy             = flag.Int("rdy", 1, "RDY count per connection [extension]")
	runfor          = flag.Duration("runfor", 10*time.Second, "how long to stay subscribed after all connections are up; 0 = until interrupted [extension]")
	dialConcurrency = flag.Int("dial-concurrency", 64, "connections being set up at once [extension]")
	size            = flag.Int("size", 200, "size of messages (for the MB/s figure) [extension]")
)

func main() {
	flag.Parse()
	log.SetPrefix("bench_channels: ")
	log.SetFlags(0)
	benchutil.WaitDeadline(*deadline)

	rdyCmd := []byte("RDY " + strconv.Itoa(*rdy) + "\n")
	var (
		received atomic.Int64
		stopping atomic.Bool
		mu       sync.Mutex
		conns    []net.Conn
		ready    sync.WaitGroup
		done     sync.WaitGroup
	)
	sem := make(chan struct{}, max(1, *dialConcurrency))
	t0 := time.Now()
	for i := 0; i < *num; i++ {
		ready.Add(1)
		done.Add(1)
		go func(i int) {
			defer done.Done()
			sem <- struct{}{}
			conn, rd, err := subscribe(*topic, "ch"+strconv.Itoa(i), rdyCmd)
			<-sem
			if err != nil {
				log.Fatalf("connection %d: %s", i, err)
			}
			defer conn.Close()
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			ready.Done()
			consume(conn, rd, &received, &stopping)
		}(i)
	}
	ready.Wait()
	setup := time.Since(t0)
	fmt.Printf("%d connections subscribed in %s (%.0f/s)\n", *num, setup, float64(*num)/setup.Seconds())

	base := received.Load()
	t1 := time.Now()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var timeout <-chan time.Time
	if *runfor > 0 {
		timeout = time.After(*runfor)
	}
	select {
	case <-sigs:
	case <-timeout:
	}
	d := time.Since(t1)
	msgs := received.Load() - base
	stopping.Store(true)
	mu.Lock()
	for _, c := range conns {
		c.SetReadDeadline(time.Now())
	}
	mu.Unlock()
	done.Wait()
	fmt.Print("deliveries over all channels: ")
	benchutil.Result(os.Stdout, d, msgs, *size)
}

// subscribe connects, identifies, subscribes and sends RDY.
func subscribe(topic, channel string, rdyCmd []byte) (net.Conn, *benchutil.Reader, error) {
	var conn net.Conn
	var rd *benchutil.Reader
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		conn, rd, err = benchutil.Dial(*tcpAddress, "channels", 4096)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, nil, err
	}
	if _, err := conn.Write([]byte("SUB " + topic + " " + channel + "\n")); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := rd.ExpectOK(); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("SUB: %w", err)
	}
	if _, err := conn.Write(rdyCmd); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rd, nil
}

// consume FINs messages and NOPs heartbeats until the connection ends.
func consume(conn net.Conn, rd *benchutil.Reader, received *atomic.Int64, stopping *atomic.Bool) {
	w := bufio.NewWriterSize(conn, 4096)
	fin := []byte("FIN 0123456789abcdef\n")
	for {
		typ, data, err := rd.ReadFrame()
		if err != nil {
			if stopping.Load() {
				return
			}
			log.Fatalf("read: %s", err)
		}
		switch typ {
		case benchutil.FrameTypeMessage:
			if len(data) < benchutil.MsgHeader {
				log.Fatalf("short message frame (%d bytes)", len(data))
			}
			copy(fin[4:20], data[benchutil.MsgIDOffset:benchutil.MsgIDOffset+benchutil.MsgIDLength])
			w.Write(fin)
			received.Add(1)
		case benchutil.FrameTypeResponse:
			if bytes.Equal(data, benchutil.Heartbeat) {
				w.Write([]byte("NOP\n"))
			}
		case benchutil.FrameTypeError:
			log.Fatalf("error frame: %s", data)
		}
		if rd.R.Buffered() == 0 && w.Buffered() > 0 {
			if err := w.Flush(); err != nil && !stopping.Load() {
				log.Fatalf("write: %s", err)
			}
		}
	}
}
