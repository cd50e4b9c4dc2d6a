// Command bench_latency measures end-to-end latency through one nsqd: the
// time from a publisher's PUB to the consumer reading the message (the
// "end-to-end latency at 10k msg/s" reference rows).
//
// One publisher connection sends PUB at a fixed --rate for --runfor, paced
// by an absolute schedule (message i is due at start + i/rate: no drift,
// and a late publisher catches up by sending at once). Each body of
// --size bytes carries its send time in its first 8 bytes (big-endian
// nanoseconds on the process's monotonic clock, taken just before the
// write) and a per-run marker in the next 8. The publisher's OKs are read
// by a separate goroutine, so it never waits for them.
//
// One consumer connection (IDENTIFY, SUB to --channel, RDY --rdy) FINs
// every message; with --buffering=off it IDENTIFYs with
// "output_buffer_size":-1 (nsqd writes every message at once), with
// --buffering=on it keeps nsqd's defaults (16 KiB buffer flushed at least
// every 250 ms). Both connections are set up (SUB answered, RDY sent)
// before the first PUB. A sample is the consumer's clock when the frame
// has been read minus the send time in the body; messages sent during the
// first --warmup are not sampled. Messages without this run's marker are
// FINed and reported as foreign.
//
// stdout: NSQ's result line for the publisher (its ops/s is the achieved
// publish rate) and "latency: N samples - p50 …us - p90 … - p99 … -
// p99.9 … - max …us" (nearest-rank percentiles of all samples, sorted).
// stderr: client CPU per message and the details of the run.
package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

var (
	tcpAddress = flag.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> to connect to nsqd")
	topic      = flag.String("topic", "sub_bench", "topic to publish to and consume from")
	channel    = flag.String("channel", "ch", "channel to consume from")
	size       = flag.Int("size", 200, "size of messages (at least 16: send time + run marker)")
	rate       = flag.Int("rate", 10000, "messages per second to publish")
	runfor     = flag.Duration("runfor", 10*time.Second, "how long to publish (including --warmup)")
	warmup     = flag.Duration("warmup", time.Second, "messages sent during the first --warmup are not sampled")
	rdy        = flag.Int("rdy", 2500, "consumer's RDY count")
	buffering  = flag.String("buffering", "off", `consumer's output buffering: off (IDENTIFY "output_buffer_size":-1) or on (nsqd's defaults)`)
	deadline   = flag.String("deadline", "", "deadline to start the benchmark run")
)

func main() {
	flag.Parse()
	log.SetPrefix("bench_latency: ")
	log.SetFlags(0)
	if *size < 16 {
		log.Fatal("--size must be at least 16")
	}
	if *rate <= 0 {
		log.Fatal("--rate must be > 0")
	}
	if *warmup < 0 || *warmup >= *runfor {
		log.Fatalf("--warmup (%s) must be shorter than --runfor (%s)", *warmup, *runfor)
	}
	if *buffering != "on" && *buffering != "off" {
		log.Fatalf("--buffering must be on or off, not %q", *buffering)
	}

	// the common time base of publisher and consumer
	base := time.Now()
	stamp := func() int64 { return int64(time.Since(base)) }
	var marker [8]byte
	rand.Read(marker[:])

	// consumer: IDENTIFY, SUB (answered), RDY
	ident := map[string]any{"client_id": "latency", "hostname": "latency"}
	if *buffering == "off" {
		ident["output_buffer_size"] = -1
	}
	sub, subRd, err := benchutil.DialIdentify(*tcpAddress, benchutil.IdentifyCommandWith(ident), 64*1024)
	if err != nil {
		log.Fatalf("consumer: %s", err)
	}
	defer sub.Close()
	if _, err := sub.Write([]byte("SUB " + *topic + " " + *channel + "\n")); err != nil {
		log.Fatal(err)
	}
	if err := subRd.ExpectOK(); err != nil {
		log.Fatalf("SUB: %s", err)
	}
	if _, err := sub.Write([]byte("RDY " + strconv.Itoa(*rdy) + "\n")); err != nil {
		log.Fatal(err)
	}

	// publisher
	pub, pubRd, err := benchutil.Dial(*tcpAddress, "latency", 4096)
	if err != nil {
		log.Fatalf("publisher: %s", err)
	}
	defer pub.Close()
	body := bytes.Repeat([]byte{'a'}, *size)
	copy(body[8:16], marker[:])
	cmd := benchutil.PubCommand(*topic, body)
	stampAt := len(cmd) - *size

	benchutil.WaitDeadline(*deadline)
	t0 := time.Now()
	cpu0 := benchutil.ProcessCPU()
	end := t0.Add(*runfor)
	warmupEnd := int64(t0.Sub(base) + *warmup)
	expected := int64(runfor.Seconds()*float64(*rate)) + 1

	var (
		stopping      atomic.Bool
		oks, received atomic.Int64
		foreign       int64
		samples       = make([]int64, 0, expected)
		readers       sync.WaitGroup
	)

	// consumer loop: sample, FIN, answer heartbeats
	readers.Add(1)
	go func() {
		defer readers.Done()
		w := bufio.NewWriterSize(sub, 4096)
		err := benchutil.ConsumeFrames(subRd, w, func(data []byte) {
			now := stamp()
			b := data[benchutil.MsgHeader:]
			if len(b) >= 16 && bytes.Equal(b[8:16], marker[:]) {
				if sent := int64(binary.BigEndian.Uint64(b)); sent >= warmupEnd {
					samples = append(samples, now-sent)
				}
				received.Add(1)
			} else {
				foreign++
			}
			benchutil.WriteFIN(w, data)
		})
		var ne net.Error
		if !stopping.Load() || !errors.As(err, &ne) || !ne.Timeout() {
			log.Fatalf("consumer: %s", err)
		}
	}()

	// the publisher's responses, read aside so that it never waits
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			typ, data, err := pubRd.ReadFrame()
			if err != nil {
				var ne net.Error
				if stopping.Load() && errors.As(err, &ne) && ne.Timeout() {
					return
				}
				log.Fatalf("publisher: %s", err)
			}
			switch {
			case typ == benchutil.FrameTypeResponse && string(data) == "OK":
				oks.Add(1)
			case typ == benchutil.FrameTypeResponse && bytes.Equal(data, benchutil.Heartbeat):
				if _, err := pub.Write([]byte("NOP\n")); err != nil {
					log.Fatalf("publisher: %s", err)
				}
			case typ == benchutil.FrameTypeError:
				log.Fatalf("publisher: error frame %s", data)
			default:
				log.Fatalf("publisher: unexpected frame type %d: %q", typ, data)
			}
		}
	}()

	// publisher: message i is due at t0 + i/rate
	sleep := preciseSleeper()
	var sent, lateSends int64
	var maxLag time.Duration
	for {
		due := t0.Add(time.Duration(sent * int64(time.Second) / int64(*rate)))
		if !due.Before(end) {
			break
		}
		for d := time.Until(due); d > 0; d = time.Until(due) {
			sleep(d)
		}
		binary.BigEndian.PutUint64(cmd[stampAt:], uint64(stamp()))
		if _, err := pub.Write(cmd); err != nil {
			log.Fatalf("publisher: %s", err)
		}
		lag := time.Since(due)
		maxLag = max(maxLag, lag)
		if lag > time.Millisecond {
			lateSends++
		}
		sent++
	}
	pubDur := time.Since(t0)

	// wait for the OKs and the deliveries (at most 10 s)
	wait := time.Now().Add(10 * time.Second)
	for (oks.Load() < sent || received.Load() < sent) && time.Now().Before(wait) {
		time.Sleep(10 * time.Millisecond)
	}
	stopping.Store(true)
	sub.SetReadDeadline(time.Now())
	pub.SetReadDeadline(time.Now())
	readers.Wait()

	benchutil.Result(os.Stdout, pubDur, sent, *size)
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	n := len(samples)
	if n == 0 {
		fmt.Println("latency: 0 samples")
	} else {
		slices.Sort(samples)
		pct := func(q float64) int64 {
			i := int(math.Ceil(q*float64(n))) - 1
			return samples[max(0, min(n-1, i))]
		}
		fmt.Printf("latency: %d samples - p50 %.1fus - p90 %.1fus - p99 %.1fus - p99.9 %.1fus - max %.1fus\n",
			n, us(pct(0.50)), us(pct(0.90)), us(pct(0.99)), us(pct(0.999)), us(samples[n-1]))
	}
	benchutil.ClientCPU(os.Stderr, cpu0, sent)
	fmt.Fprintf(os.Stderr, "# PUB at %d/s for %s: %d sent (%.1f/s), %d OK, %d received, %d lost, %d foreign; first %s not sampled\n",
		*rate, *runfor, sent, float64(sent)/pubDur.Seconds(), oks.Load(), received.Load(),
		sent-received.Load(), foreign, *warmup)
	fmt.Fprintf(os.Stderr, "# schedule: max lag %s, %d sends more than 1ms late; consumer RDY %d, output buffering %s\n",
		maxLag.Round(time.Microsecond), lateSends, *rdy, *buffering)
	if received.Load() < sent {
		log.Fatalf("%d of %d messages did not arrive within 10 s", sent-received.Load(), sent)
	}
}
