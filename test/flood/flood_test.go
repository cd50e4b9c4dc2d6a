// Package flood measures how nsqd's memory behaves under a flood of
// concurrent maximum-size MPUBs (robustness issue, part 2: bounds before
// allocation). It is a measurement, not a regression test: `make test`
// skips it. Run it with
//
//	NSQ_FLOOD=1 go test -v -run TestMPUBFlood -timeout 30m ./test/flood
//
// Knobs (environment):
//
//	NSQ_FLOOD_CONNS      concurrent connections (default 1000)
//	NSQ_FLOOD_MSGS       messages per MPUB (default 5); each message is as
//	                     large as fits, so the MPUB body is --max-body-size
//	NSQ_FLOOD_ARGS       extra nsqd flags, space-separated (e.g.
//	                     "--mem-queue-size=0")
//	NSQ_FLOOD_NSQD       an nsqd binary to use instead of building one
//
// It reports nsqd's resident set before the flood, its peak (VmHWM from
// /proc/<pid>/status) and how many MPUBs got OK.
package flood

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/test/internal/daemons"
)

const (
	maxBodySize = 5 * 1024 * 1024 // nsqd's --max-body-size default
	maxMsgSize  = 1024 * 1024     // nsqd's --max-msg-size default
)

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }

// nsqdBin builds ./apps/nsqd (or returns NSQ_FLOOD_NSQD).
func nsqdBin(t *testing.T) string {
	if bin := os.Getenv("NSQ_FLOOD_NSQD"); bin != "" {
		return bin
	}
	return daemons.Build(t, false).NSQD
}

// procStatus reads VmRSS and VmHWM (bytes) of pid.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			hwm = kb * 1024
		}
	}
	return rss, hwm, sc.Err()
}

// mpubPayload is one complete MPUB command whose body is exactly
// --max-body-size: [int32 body size][int32 count]([int32 size][msg])*.
func mpubPayload(t *testing.T, topic string, msgs int) ([]byte, int) {
	msgSize := (maxBodySize - 4 - 4*msgs) / msgs
	if msgSize > maxMsgSize {
		msgSize = maxMsgSize
	}
	if msgSize <= 0 {
		t.Fatalf("%d messages do not fit in %d bytes", msgs, maxBodySize)
	}
	bodyLen := 4 + msgs*(4+msgSize)
	b := make([]byte, 0, len("MPUB \n")+len(topic)+4+bodyLen)
	b = append(b, "MPUB "+topic+"\n"...)
	b = binary.BigEndian.AppendUint32(b, uint32(bodyLen))
	b = binary.BigEndian.AppendUint32(b, uint32(msgs))
	for i := 0; i < msgs; i++ {
		b = binary.BigEndian.AppendUint32(b, uint32(msgSize))
		start := len(b)
		b = b[:start+msgSize]
		for j := start; j < len(b); j++ {
			b[j] = byte('a' + (j % 26))
		}
	}
	return b, msgSize
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func TestMPUBFlood(t *testing.T) {
	if os.Getenv("NSQ_FLOOD") == "" {
		t.Skip("a measurement: set NSQ_FLOOD=1 to run it")
	}
	conns := envInt(t, "NSQ_FLOOD_CONNS", 1000)
	msgs := envInt(t, "NSQ_FLOOD_MSGS", 5)
	dir := t.TempDir()
	bin := nsqdBin(t)

	addrs := daemons.FreeAddrs(t, 2)
	tcpAddr, httpAddr := addrs[0], addrs[1]
	args := []string{
		"--tcp-address=" + tcpAddr,
		"--http-address=" + httpAddr,
		"--https-address=",
		"--data-path=" + dir,
		"--log-level=warn",
	}
	if extra := strings.Fields(os.Getenv("NSQ_FLOOD_ARGS")); len(extra) > 0 {
		args = append(args, extra...)
	}
	p := daemons.Start(t, daemons.Cmd{Name: "nsqd", Bin: bin, Args: args})
	defer func() {
		// a graceful stop; what is still running after 60s is killed at cleanup
		p.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
		case <-time.After(60 * time.Second):
		}
	}()
	pid := p.PID()

	// both listeners are bound before nsqd serves /ping
	p.WaitPing(t, httpAddr, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	baseRSS, _, err := procStatus(pid)
	if err != nil {
		t.Fatal(err)
	}

	payload, msgSize := mpubPayload(t, "flood", msgs)
	t.Logf("nsqd %v", args)
	t.Logf("%d connections x MPUB of %d x %d B (command %d B, %s in total); nsqd RSS before: %s",
		conns, msgs, msgSize, len(payload), mib(int64(conns)*int64(len(payload))), mib(baseRSS))

	// sample RSS while the flood runs (VmHWM is the kernel's exact peak)
	var peakSampled atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				if rss, _, err := procStatus(pid); err == nil && rss > peakSampled.Load() {
					peakSampled.Store(rss)
				}
			}
		}
	}()

	// connect everyone first, then release all writes at once
	var ok, refused, failed atomic.Int64
	var errMu sync.Mutex
	errSamples := map[string]int{}
	noteErr := func(s string) {
		errMu.Lock()
		if len(errSamples) < 20 {
			errSamples[s]++
		}
		errMu.Unlock()
	}
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(conns)
	done.Add(conns)
	for i := 0; i < conns; i++ {
		go func() {
			defer done.Done()
			c, err := net.DialTimeout("tcp", tcpAddr, 30*time.Second)
			ready.Done()
			if err != nil {
				failed.Add(1)
				noteErr("dial: " + err.Error())
				return
			}
			defer c.Close()
			<-start
			c.SetDeadline(time.Now().Add(5 * time.Minute))
			if _, err := c.Write([]byte("  V2")); err == nil {
				_, err = c.Write(payload)
			}
			if err != nil {
				// nsqd may refuse (and close) before taking it all
				noteErr("write: " + err.Error())
			}
			var hdr [8]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				failed.Add(1)
				noteErr("read: " + err.Error())
				return
			}
			size := binary.BigEndian.Uint32(hdr[:4])
			typ := binary.BigEndian.Uint32(hdr[4:])
			data := make([]byte, min(size-4, 4096))
			io.ReadFull(c, data)
			switch {
			case typ == 0 && string(data) == "OK":
				ok.Add(1)
			default:
				refused.Add(1)
				noteErr(fmt.Sprintf("frame %d %q", typ, data))
			}
		}()
	}
	ready.Wait()
	began := time.Now()
	close(start)
	done.Wait()
	elapsed := time.Since(began)
	close(stopSampling)
	<-sampled

	// give nsqd a moment to settle, then read its exact peak
	time.Sleep(500 * time.Millisecond)
	afterRSS, hwm, err := procStatus(pid)
	if err != nil {
		t.Fatalf("nsqd gone after the flood: %v\n%s", err, p.Output())
	}
	depth := topicDepth(t, httpAddr, "flood")

	t.Logf("flood: %d OK, %d refused, %d failed in %s (%.0f MiB/s accepted)",
		ok.Load(), refused.Load(), failed.Load(), elapsed.Round(time.Millisecond),
		float64(ok.Load())*float64(len(payload))/(1<<20)/elapsed.Seconds())
	if len(errSamples) > 0 {
		t.Logf("errors seen: %v", errSamples)
	}
	t.Logf("nsqd RSS: before %s, peak (VmHWM) %s, sampled peak %s, after %s; topic depth %d messages",
		mib(baseRSS), mib(hwm), mib(peakSampled.Load()), mib(afterRSS), depth)
	t.Logf("peak minus baseline per accepted MPUB: %s", mib((hwm-baseRSS)/max(ok.Load(), 1)))
	if want := ok.Load() * int64(msgs); depth != want {
		t.Errorf("topic depth %d, want %d (every OK'd message kept)", depth, want)
	}
}

// topicDepth reads a topic's depth from /stats.
func topicDepth(t *testing.T, httpAddr, topic string) int64 {
	resp, err := http.Get("http://" + httpAddr + "/stats?format=json&topic=" + topic)
	if err != nil {
		t.Fatalf("/stats: %v", err)
	}
	defer resp.Body.Close()
	var stats struct {
		Topics []struct {
			TopicName string `json:"topic_name"`
			Depth     int64  `json:"depth"`
		} `json:"topics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	for _, tp := range stats.Topics {
		if tp.TopicName == topic {
			return tp.Depth
		}
	}
	return 0
}
