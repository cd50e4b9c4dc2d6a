package nsqd

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Disk full (health.go, docs/robustness-crash.md part 5): while the data
// path cannot be written every publish is refused with the cause, /ping is
// 500 "NOK - <err>", and both recover by themselves once writing works
// again. The disk is simulated: a backend that fails its writes, and a
// probe that fails while the "disk" is full.

// dfBackend wraps a real backend and fails Put while full is set.
type dfBackend struct {
	BackendQueue
	full *atomic.Bool
}

var errDFNoSpace = &os.PathError{Op: "write", Path: "df.diskqueue.000000.dat", Err: syscall.ENOSPC}

func (b *dfBackend) Put(p []byte) error {
	if b.full.Load() {
		return errDFNoSpace
	}
	return b.BackendQueue.Put(p)
}

// dfPub sends one PUB on a fresh connection and returns the answer.
func dfPub(t *testing.T, addr, topic, body string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	cmd := []byte("  V2PUB " + topic + "\n")
	cmd = binary.BigEndian.AppendUint32(cmd, uint32(len(body)))
	cmd = append(cmd, body...)
	if _, err := conn.Write(cmd); err != nil {
		t.Fatal(err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(conn, data); err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func dfHTTP(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("hello"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDiskFullRefusesAndRecovers(t *testing.T) {
	// a memory queue of 1: the first message of a topic without channels
	// stays in memory, the second goes to the backend
	n := startTestNSQD(t, func(o *Options) {
		o.MemQueueSize = 1
		o.HTTPAddress = "127.0.0.1:0"
	})
	var full atomic.Bool
	probe := func(string) error {
		if full.Load() {
			return errDFNoSpace
		}
		return nil
	}
	n.prober.probe.Store(&probe)
	n.prober.interval.Store(int64(50 * time.Millisecond))

	tcp := n.RealTCPAddr().String()
	web := "http://" + n.RealHTTPAddr().String()
	existing := n.GetTopic("existing")
	existing.Lock()
	existing.backend = &dfBackend{BackendQueue: existing.backend, full: &full}
	existing.Unlock()
	roomy := n.GetTopic("roomy") // empty memory queue, healthy backend

	if got := dfPub(t, tcp, "existing", "m1"); got != "OK" {
		t.Fatalf("first PUB: %q", got)
	}
	// healthy: the probe sleeps
	time.Sleep(200 * time.Millisecond)
	if c := n.prober.calls.Load(); c != 0 {
		t.Errorf("%d probes while healthy, want 0", c)
	}

	// the disk fills up: the write to the backend fails
	full.Store(true)
	wantErr := "E_PUB_FAILED PUB failed " + errDFNoSpace.Error()
	if got := dfPub(t, tcp, "existing", "m2"); got != wantErr {
		t.Fatalf("PUB on a full disk: %q, want %q", got, wantErr)
	}
	if code, body := dfHTTP(t, "GET", web+"/ping"); code != 500 || body != "NOK - "+errDFNoSpace.Error() {
		t.Errorf("/ping: %d %q", code, body)
	}
	// every topic is refused, also one whose memory queue has room, and a
	// new one; over TCP and HTTP
	for _, topic := range []string{"existing", "roomy", "brand_new"} {
		if got := dfPub(t, tcp, topic, "x"); got != wantErr {
			t.Errorf("PUB %s while unhealthy: %q, want %q", topic, got, wantErr)
		}
		if code, body := dfHTTP(t, "POST", web+"/pub?topic="+topic+"_http"); code != 500 || !strings.Contains(body, "INTERNAL_ERROR") {
			t.Errorf("/pub %s_http while unhealthy: %d %q, want 500 INTERNAL_ERROR", topic, code, body)
		}
	}
	if d := roomy.Depth(); d != 0 {
		t.Errorf("roomy depth %d: a refused message was queued", d)
	}
	// an ephemeral topic never writes to disk: still accepted
	if got := dfPub(t, tcp, "eph#ephemeral", "x"); got != "OK" {
		t.Errorf("PUB to an ephemeral topic while unhealthy: %q", got)
	}
	// the probe keeps failing: still unhealthy
	time.Sleep(300 * time.Millisecond)
	if n.IsHealthy() || n.prober.calls.Load() < 3 {
		t.Errorf("after 300ms of failing probes: healthy=%v, %d probes", n.IsHealthy(), n.prober.calls.Load())
	}

	// space returns: without any publish, the probe makes nsqd healthy
	full.Store(false)
	deadline := time.Now().Add(3 * time.Second)
	for !n.IsHealthy() {
		if time.Now().After(deadline) {
			t.Fatalf("still unhealthy 3s after the disk has space: %s", n.GetHealth())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := dfHTTP(t, "GET", web+"/ping"); code != 200 || body != "OK" {
		t.Errorf("/ping after recovery: %d %q", code, body)
	}
	for _, topic := range []string{"existing", "roomy", "brand_new", "newer"} {
		if got := dfPub(t, tcp, topic, "y"); got != "OK" {
			t.Errorf("PUB %s after recovery: %q", topic, got)
		}
		if code, body := dfHTTP(t, "POST", web+"/pub?topic="+topic+"_http"); code != 200 || body != "OK" {
			t.Errorf("/pub %s_http after recovery: %d %q", topic, code, body)
		}
	}
	// healthy again: the probe goes back to sleep
	calls := n.prober.calls.Load()
	time.Sleep(200 * time.Millisecond)
	if c := n.prober.calls.Load(); c != calls {
		t.Errorf("%d probes while healthy again", c-calls)
	}
}

// A busy publisher sees the recovery at once: a refused publish probes the
// data path itself (at most every inlineProbeGap).
func TestDiskFullInlineProbe(t *testing.T) {
	n := startTestNSQD(t, nil)
	var full atomic.Bool
	full.Store(true)
	probe := func(string) error {
		if full.Load() {
			return errDFNoSpace
		}
		return nil
	}
	n.prober.probe.Store(&probe)
	n.prober.interval.Store(int64(time.Hour)) // no background probe here
	n.SetHealth(errDFNoSpace)
	topic := n.GetTopic("t")
	err := topic.PutMessage(NewMessage(topic.GenerateID(), []byte("x")))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put while full: %v", err)
	}
	full.Store(false)
	time.Sleep(inlineProbeGap)
	if err := topic.PutMessage(NewMessage(topic.GenerateID(), []byte("x"))); err != nil {
		t.Fatalf("put after space returned: %v", err)
	}
	if !n.IsHealthy() {
		t.Errorf("health %s", n.GetHealth())
	}
}

// The real probe writes, syncs and removes a file in the data path, and
// fails when the data path is not there.
func TestProbeDataPath(t *testing.T) {
	dir := t.TempDir()
	if err := probeDataPath(dir); err != nil {
		t.Fatal(err)
	}
	if m, _ := os.ReadDir(dir); len(m) != 0 {
		t.Errorf("probe left %v", m)
	}
	if err := probeDataPath(dir + "/missing"); err == nil {
		t.Errorf("probe of a missing directory succeeded")
	}
}
