// Package restart runs the nsqd binary, stops it with a signal and starts it
// again on the same data path: every message must survive, deferred ones
// keep their deliver-at time. Spec rows: D-CLI-61, D-SHUT-01, D-SHUT-02,
// D-SHUT-04, D-CLI-60, Q-15, Q-16 (SIGHUP = graceful exit, our policy).
package restart

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/test/internal/daemons"
)

func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }

// ---------------------------------------------------------------------------
// process handling

type proc struct {
	*daemons.Proc
	addr string // TCP
}

func startNSQD(t *testing.T, dataPath string) *proc {
	t.Helper()
	bin := daemons.Build(t, false).NSQD
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	nsqdFlags := string(help) // to pass only flags the binary knows
	args := []string{"--tcp-address=127.0.0.1:0", "--data-path=" + dataPath, "--log-level=info"}
	// keep every listener on loopback, port 0, if the binary has it
	for _, f := range []string{"http-address", "https-address"} {
		if strings.Contains(nsqdFlags, "-"+f) {
			args = append(args, "--"+f+"=127.0.0.1:0")
		}
	}
	if strings.Contains(nsqdFlags, "-broadcast-address") {
		args = append(args, "--broadcast-address=127.0.0.1")
	}
	p := &proc{Proc: daemons.Start(t, daemons.Cmd{Name: "nsqd", Bin: bin, Args: args, Quiet: true})}
	p.addr = p.WaitListening(t, 10*time.Second, "TCP")[0]
	return p
}

// stop sends sig and expects a graceful exit: status 0 within 15s (D-CLI-61,
// Q-16) and "INFO: NSQ: bye" as the last log line.
func (p *proc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	p.Stop(t, sig, 15*time.Second)
	out := strings.TrimRight(p.Output(), "\n")
	last := out[strings.LastIndexByte(out, '\n')+1:]
	if !strings.HasSuffix(last, "INFO: NSQ: bye") {
		t.Errorf("last log line after %v is %q, want \"... INFO: NSQ: bye\"; log:\n%s", sig, last, out)
	}
}

// ---------------------------------------------------------------------------
// raw V2 consumer (go-nsq never lets go of messages it was not told to answer)

type rawMsg struct {
	id       string
	attempts uint16
	body     string
	at       time.Time
}

type rawConn struct {
	c      net.Conn
	wmu    sync.Mutex
	frames chan []byte // non-heartbeat responses; errors are prefixed "ERR "
	msgs   chan rawMsg
	done   chan struct{}
	err    error
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	r := &rawConn{c: c, frames: make(chan []byte, 100), msgs: make(chan rawMsg, 10000), done: make(chan struct{})}
	if err := r.send("  V2"); err != nil {
		t.Fatalf("magic: %v", err)
	}
	go r.readLoop()
	t.Cleanup(func() {
		c.Close()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
		}
	})
	return r
}

func (r *rawConn) send(format string, args ...interface{}) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := fmt.Fprintf(r.c, format, args...)
	return err
}

func (r *rawConn) readLoop() {
	defer close(r.done)
	br := bufio.NewReader(r.c)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			r.err = err
			return
		}
		size := binary.BigEndian.Uint32(hdr[:4])
		typ := binary.BigEndian.Uint32(hdr[4:])
		if size < 4 || size > 64<<20 {
			r.err = fmt.Errorf("bad frame size %d", size)
			return
		}
		data := make([]byte, size-4)
		if _, err := io.ReadFull(br, data); err != nil {
			r.err = err
			return
		}
		switch typ {
		case 0:
			if string(data) == "_heartbeat_" {
				r.send("NOP\n")
				continue
			}
			r.frames <- data
		case 1:
			r.frames <- append([]byte("ERR "), data...)
		case 2:
			if len(data) < 26 {
				r.err = fmt.Errorf("short message frame")
				return
			}
			r.msgs <- rawMsg{
				attempts: binary.BigEndian.Uint16(data[8:10]),
				id:       string(data[10:26]),
				body:     string(data[26:]),
				at:       time.Now(),
			}
		default:
			r.err = fmt.Errorf("frame type %d", typ)
			return
		}
	}
}

func (r *rawConn) sub(t *testing.T, topic, channel string, rdy int) {
	t.Helper()
	if err := r.send("SUB %s %s\n", topic, channel); err != nil {
		t.Fatalf("SUB: %v", err)
	}
	select {
	case f := <-r.frames:
		if string(f) != "OK" {
			t.Fatalf("SUB %s %s: %q", topic, channel, f)
		}
	case <-r.done:
		t.Fatalf("SUB: connection closed (%v)", r.err)
	case <-time.After(5 * time.Second):
		t.Fatalf("SUB: no response in 5s")
	}
	if err := r.send("RDY %d\n", rdy); err != nil {
		t.Fatalf("RDY: %v", err)
	}
}

func (r *rawConn) recv(t *testing.T, n int, timeout time.Duration) []rawMsg {
	t.Helper()
	var out []rawMsg
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m := <-r.msgs:
			out = append(out, m)
		case <-r.done:
			t.Fatalf("connection closed after %d of %d messages (%v)", len(out), n, r.err)
		case <-deadline:
			t.Fatalf("got %d of %d messages in %v", len(out), n, timeout)
		}
	}
	return out
}

// ---------------------------------------------------------------------------

func TestRestartAfterSignal(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"SIGINT", syscall.SIGINT},
		{"SIGHUP", syscall.SIGHUP}, // graceful like SIGTERM (NSQ dies without flushing)
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testRestart(t, tc.sig)
		})
	}
}

func testRestart(t *testing.T, sig syscall.Signal) {
	const (
		topic    = "restart"
		channel  = "c"
		n        = 50
		inflight = 5
		deferred = 5
		deferBy  = 4 * time.Second
	)
	dataPath := t.TempDir()
	p1 := startNSQD(t, dataPath)

	// the consumer subscribes first (creates topic and channel) and keeps
	// `inflight` messages without answering them
	rc := dialRaw(t, p1.addr)
	rc.sub(t, topic, channel, inflight)

	cfg := nsq.NewConfig()
	prod, err := nsq.NewProducer(p1.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	prod.SetLogger(nil, nsq.LogLevelError)
	defer prod.Stop()
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		b := fmt.Sprintf("m-%02d", i)
		want[b] = true
		if err := prod.Publish(topic, []byte(b)); err != nil {
			t.Fatalf("PUB: %v", err)
		}
	}
	held := rc.recv(t, inflight, 5*time.Second)
	heldSet := map[string]bool{}
	for _, m := range held {
		heldSet[m.body] = true
	}
	due := map[string]time.Time{}
	for i := 0; i < deferred; i++ {
		b := fmt.Sprintf("d-%d", i)
		want[b] = true
		at := time.Now()
		if err := prod.DeferredPublish(topic, deferBy, []byte(b)); err != nil {
			t.Fatalf("DPUB: %v", err)
		}
		due[b] = at.Add(deferBy)
	}
	prod.Stop()
	earliestDue := due["d-0"]
	time.Sleep(100 * time.Millisecond) // let the DPUBs fan out to the channel

	p1.stop(t, sig)
	// D-SHUT-04: the consumer connection was closed by the server
	select {
	case <-rc.done:
	case <-time.After(2 * time.Second):
		t.Errorf("consumer connection still open after nsqd exited")
	}

	p2 := startNSQD(t, dataPath)
	rc2 := dialRaw(t, p2.addr)
	rc2.sub(t, topic, channel, 200)
	if left := time.Until(earliestDue); left < 300*time.Millisecond {
		t.Fatalf("inconclusive: restart took until %v before the deferred messages were due", left)
	}

	got := map[string][]rawMsg{}
	wait := time.After(time.Until(earliestDue) + 6*time.Second)
	for len(got) < len(want) {
		select {
		case m := <-rc2.msgs:
			rc2.send("FIN %s\n", m.id)
			got[m.body] = append(got[m.body], m)
		case f := <-rc2.frames:
			t.Errorf("unexpected frame %q", f)
		case <-rc2.done:
			t.Fatalf("connection closed (%v)", rc2.err)
		case <-wait:
			var missing []string
			for b := range want {
				if len(got[b]) == 0 {
					missing = append(missing, b)
				}
			}
			sort.Strings(missing)
			t.Fatalf("%d of %d messages not delivered after restart: %v\nlog of first run:\n%s", len(missing), len(want), missing, p1.Output())
		}
	}
	// catch stray duplicates
	extra := time.After(300 * time.Millisecond)
collect:
	for {
		select {
		case m := <-rc2.msgs:
			rc2.send("FIN %s\n", m.id)
			got[m.body] = append(got[m.body], m)
		case <-extra:
			break collect
		}
	}

	for b, ms := range got {
		if !want[b] {
			t.Errorf("unexpected body %q", b)
			continue
		}
		m := ms[0]
		switch {
		case heldSet[b]:
			if len(ms) > 1 {
				t.Logf("%q (in flight at shutdown) delivered %d times", b, len(ms))
			}
			if m.attempts != 2 {
				t.Errorf("%q was in flight at shutdown: attempts %d after restart, want 2 (D-SHUT-02)", b, m.attempts)
			}
		case !due[b].IsZero():
			if len(ms) > 1 {
				t.Errorf("deferred %q delivered %d times", b, len(ms))
			}
			t.Logf("deferred %q delivered %v after its deliver-at time", b, m.at.Sub(due[b]))
			if m.at.Before(due[b]) {
				t.Errorf("deferred %q delivered %v before its deliver-at time (Q-15)", b, due[b].Sub(m.at))
			}
			if m.attempts != 1 {
				t.Errorf("deferred %q attempts %d, want 1", b, m.attempts)
			}
		default:
			if len(ms) > 1 {
				t.Errorf("%q delivered %d times", b, len(ms))
			}
			if m.attempts != 1 {
				t.Errorf("%q attempts %d, want 1", b, m.attempts)
			}
		}
	}

	p2.stop(t, syscall.SIGTERM)
}
