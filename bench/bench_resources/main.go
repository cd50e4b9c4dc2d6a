// Command bench_resources measures the memory and CPU of a running nsqd
// from /proc/<pid> (Linux): RSS is VmRSS from /proc/<pid>/status, CPU is
// utime+stime from /proc/<pid>/stat (10 ms resolution).
//
//	bench_resources channels --pid=P [--topics=100 --channels=100 --idle=10s]
//	bench_resources conns    --pid=P [--num=5000 --identify]
//	bench_resources empty    --pid=P
//
// channels: creates --topics topics over HTTP (POST /topic/create) and then
// --channels channels in each (POST /channel/create) with --workers
// keep-alive connections, and prints the wall time. From the last create on
// it samples nsqd's CPU every 100 ms: "quiet after" is the time from the
// last create to the start of the first full second in which nsqd used
// less than --quiet-cpu percent of one core (at most --quiet-timeout).
// Then it prints nsqd's RSS and its average CPU over --idle. If nsqd never
// got quiet because even its idle CPU is above --quiet-cpu, it also prints
// "near idle after": the start of the first second (from the samples
// taken while waiting) below the idle CPU plus --quiet-cpu points.
//
// conns: measures RSS (once it has settled), opens --num TCP connections
// that send only the magic "  V2" (with --identify also an IDENTIFY, whose
// OK is awaited), holds them, measures RSS again once it has settled, and
// prints the difference per connection. Then it closes them. The soft
// RLIMIT_NOFILE of the tool is raised as needed; nsqd needs its own limit
// raised by whoever starts it (bench/resources.sh does).
//
// empty: prints the RSS once it has settled (meant for a freshly started
// nsqd with no topics).
//
// The lines starting with "create time:", "quiet after:", "near idle
// after:", "rss:", "idle cpu:" and "per connection:" are parsed by
// bench/resources.sh.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

var (
	fs          = flag.NewFlagSet("bench_resources", flag.ExitOnError)
	pid         = fs.Int("pid", 0, "pid of the nsqd to measure (required)")
	httpAddress = fs.String("nsqd-http-address", "127.0.0.1:4151", "<addr>:<port> of nsqd's HTTP listener (channels)")
	tcpAddress  = fs.String("nsqd-tcp-address", "127.0.0.1:4150", "<addr>:<port> of nsqd's TCP listener (conns)")

	topics       = fs.Int("topics", 100, "channels: number of topics")
	channels     = fs.Int("channels", 100, "channels: channels per topic")
	prefix       = fs.String("prefix", "res", "channels: topics are <prefix>_t<i>, channels c<j>")
	workers      = fs.Int("workers", 4, "channels: concurrent keep-alive HTTP connections")
	quietCPU     = fs.Float64("quiet-cpu", 2, "channels: quiet means below this percent of one core for a full second")
	quietTimeout = fs.Duration("quiet-timeout", 60*time.Second, "channels: give up waiting for quiet after this long")
	idle         = fs.Duration("idle", 10*time.Second, "channels: average the idle CPU over this long")

	num             = fs.Int("num", 5000, "conns: number of connections")
	identify        = fs.Bool("identify", false, "conns: send an IDENTIFY after the magic and wait for its OK")
	dialConcurrency = fs.Int("dial-concurrency", 64, "conns: connections being set up at once")
	settleTimeout   = fs.Duration("settle-timeout", 20*time.Second, "conns, empty: longest wait for RSS to settle")
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: bench_resources channels|conns|empty --pid=PID [flags]\n")
	fs.PrintDefaults()
}

func main() {
	log.SetPrefix("bench_resources: ")
	log.SetFlags(0)
	fs.Usage = usage
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs.Parse(os.Args[2:])
	if fs.NArg() > 0 {
		log.Fatalf("unexpected argument %q", fs.Arg(0))
	}
	switch cmd {
	case "channels", "conns", "empty":
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		log.Printf("unknown mode %q", cmd)
		usage()
		os.Exit(2)
	}
	if *pid <= 0 {
		log.Fatal("--pid is required")
	}
	if _, err := benchutil.ProcRSS(*pid); err != nil {
		log.Fatal(err)
	}
	switch cmd {
	case "channels":
		runChannels()
	case "conns":
		runConns()
	case "empty":
		rss := settledRSS()
		fmt.Printf("rss: %.1f MiB\n", mib(rss))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func mustRSS() int64 {
	rss, err := benchutil.ProcRSS(*pid)
	if err != nil {
		log.Fatal(err)
	}
	return rss
}

func mustCPU() time.Duration {
	cpu, err := benchutil.ProcCPU(*pid)
	if err != nil {
		log.Fatal(err)
	}
	return cpu
}

// settledRSS samples RSS every 200 ms and returns it once the samples of
// the last 2 s lie within 0.5 % (at least 256 KiB) of each other, or the
// last sample after --settle-timeout.
func settledRSS() int64 {
	const every, window = 200 * time.Millisecond, 11 // 11 samples = 2 s
	var s []int64
	end := time.Now().Add(*settleTimeout)
	for {
		s = append(s, mustRSS())
		if len(s) >= window {
			w := s[len(s)-window:]
			lo, hi := w[0], w[0]
			for _, v := range w {
				lo, hi = min(lo, v), max(hi, v)
			}
			if hi-lo <= max(hi/200, 256<<10) {
				return s[len(s)-1]
			}
		}
		if time.Now().After(end) {
			log.Printf("RSS did not settle within %s", *settleTimeout)
			return s[len(s)-1]
		}
		time.Sleep(every)
	}
}

// runChannels is the channels mode.
func runChannels() {
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        *workers,
			MaxIdleConnsPerHost: *workers,
			DisableCompression:  true,
		},
	}
	post := func(path string) error {
		resp, err := client.Post("http://"+*httpAddress+path, "", nil)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: %s %s", path, resp.Status, body)
		}
		return nil
	}
	// run calls post for jobs 0..n-1 on --workers goroutines
	run := func(n int, path func(i int) string) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < max(1, *workers); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					if err := post(path(i)); err != nil {
						log.Fatal(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	topic := func(t int) string { return url.QueryEscape(*prefix + "_t" + strconv.Itoa(t)) }

	cpu0 := mustCPU()
	t0 := time.Now()
	run(*topics, func(t int) string { return "/topic/create?topic=" + topic(t) })
	t1 := time.Now()
	run(*topics**channels, func(i int) string {
		return "/channel/create?topic=" + topic(i / *channels) + "&channel=c" + strconv.Itoa(i%*channels)
	})
	last := time.Now()
	client.CloseIdleConnections()
	n := *topics * *channels
	cpuCreate := mustCPU() - cpu0
	fmt.Printf("create time: %.3fs (%d topics in %.3fs, then %d channels in %.3fs, %.0f channels/s; nsqd CPU %s)\n",
		last.Sub(t0).Seconds(), *topics, t1.Sub(t0).Seconds(), n, last.Sub(t1).Seconds(),
		float64(n)/last.Sub(t1).Seconds(), cpuCreate.Round(10*time.Millisecond))

	// quiet: a 1 s window (10 intervals of 100 ms) with CPU < quiet-cpu %
	type sample struct {
		t   time.Time
		cpu time.Duration
	}
	samples := []sample{{last, mustCPU()}}
	tick := time.NewTicker(100 * time.Millisecond)
	quiet := time.Duration(-1)
	for quiet < 0 && time.Since(last) < *quietTimeout {
		<-tick.C
		samples = append(samples, sample{time.Now(), mustCPU()})
		if len(samples) > 10 {
			a, b := samples[len(samples)-11], samples[len(samples)-1]
			if float64(b.cpu-a.cpu) < *quietCPU/100*float64(b.t.Sub(a.t)) {
				quiet = a.t.Sub(last)
			}
		}
	}
	tick.Stop()
	if quiet >= 0 {
		fmt.Printf("quiet after: %.1fs (nsqd CPU below %g%% of one core for 1s)\n", quiet.Seconds(), *quietCPU)
	} else {
		a, b := samples[max(0, len(samples)-11)], samples[len(samples)-1]
		fmt.Printf("quiet after: >%.0fs (nsqd CPU never below %g%% of one core for 1s; last second: %.1f%%)\n",
			quietTimeout.Seconds(), *quietCPU, 100*float64(b.cpu-a.cpu)/float64(b.t.Sub(a.t)))
	}

	fmt.Printf("rss: %.1f MiB\n", mib(mustRSS()))

	c0, i0 := mustCPU(), time.Now()
	time.Sleep(*idle)
	c1, i1 := mustCPU(), time.Now()
	idlePct := 100 * float64(c1-c0) / float64(i1.Sub(i0))
	fmt.Printf("idle cpu: %.1f%% of one core (nsqd CPU %s over %s)\n",
		idlePct, (c1 - c0).Round(10*time.Millisecond), i1.Sub(i0).Round(time.Millisecond))

	if quiet < 0 {
		// never quiet because idle is above the threshold: report when the
		// CPU first came down to the idle level (plus the threshold) instead
		limit := idlePct + *quietCPU
		for i := 0; i+10 < len(samples); i++ {
			a, b := samples[i], samples[i+10]
			if pct := 100 * float64(b.cpu-a.cpu) / float64(b.t.Sub(a.t)); pct < limit {
				fmt.Printf("near idle after: %.1fs (first 1s with nsqd CPU below idle + %g points = %.1f%% of one core)\n",
					a.t.Sub(last).Seconds(), *quietCPU, limit)
				return
			}
		}
		fmt.Printf("near idle after: >%.0fs (nsqd CPU never below idle + %g points = %.1f%% for 1s)\n",
			quietTimeout.Seconds(), *quietCPU, limit)
	}
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to at least n (up to the hard
// limit) so that this process can hold n sockets.
func raiseNoFile(n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Printf("getrlimit: %s", err)
		return
	}
	if rl.Cur >= n {
		return
	}
	rl.Cur = min(n, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Printf("setrlimit: %s", err)
	}
	if rl.Cur < n {
		log.Printf("warning: RLIMIT_NOFILE hard limit %d < %d: dials will fail", rl.Max, n)
	}
}

// fdCount is the number of open file descriptors of pid (-1 if unknown).
func fdCount(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// runConns is the conns mode.
func runConns() {
	raiseNoFile(uint64(*num) + 256)
	hello := append([]byte{}, benchutil.MagicV2...)
	what := "magic only"
	if *identify {
		hello = append(hello, benchutil.IdentifyCommand("resources")...)
		what = "magic + IDENTIFY"
	}

	before := settledRSS()
	fds0 := fdCount(*pid)

	conns := make([]net.Conn, *num)
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	sem := make(chan struct{}, max(1, *dialConcurrency))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := open(hello)
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	took := time.Since(t0)
	nOpen := *num - int(failed.Load())
	fmt.Printf("%d connections (%s) opened in %.3fs", nOpen, what, took.Seconds())
	if firstErr != nil {
		fmt.Printf(", %d failed (first: %s)", failed.Load(), firstErr)
	}
	fmt.Println()

	after := settledRSS()
	fds1 := fdCount(*pid)
	fmt.Printf("rss: %.1f MiB before, %.1f MiB with the connections (nsqd fds %d -> %d)\n",
		mib(before), mib(after), fds0, fds1)
	if nOpen > 0 {
		fmt.Printf("per connection: %.1f KiB\n", float64(after-before)/1024/float64(nOpen))
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// open dials nsqd, sends hello and, for an IDENTIFY, waits for its OK.
func open(hello []byte) (net.Conn, error) {
	var c net.Conn
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		c, err = net.DialTimeout("tcp", *tcpAddress, 5*time.Second)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return nil, err
	}
	if *identify {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := benchutil.NewReader(c, 256).ExpectOK(); err != nil {
			c.Close()
			if errors.Is(err, benchutil.ErrFrame) {
				return nil, fmt.Errorf("IDENTIFY: %w", err)
			}
			return nil, err
		}
		c.SetReadDeadline(time.Time{})
	}
	return c, nil
}
