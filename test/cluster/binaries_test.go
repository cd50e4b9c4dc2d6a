package cluster

// The same discovery path with the real binaries, started the way `make run`
// starts them: nsqlookupd, then nsqd with --lookupd-tcp-address and
// --broadcast-address=127.0.0.1. Spec rows: D-LKP-01/02/04/05/10/11,
// L-HTTP-05, L-CLI-11, D-CLI-61 (SIGTERM → exit 0), A (go-nsq via lookupd).

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// buildBinaries compiles ./apps/nsqd and ./apps/nsqlookupd into dir.
func buildBinaries(t *testing.T, dir string) (nsqdBin, lookupdBin string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the module")
	}
	root := filepath.Dir(gomod)
	nsqdBin = filepath.Join(dir, "nsqd")
	lookupdBin = filepath.Join(dir, "nsqlookupd")

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range []struct{ out, pkg string }{{nsqdBin, "./apps/nsqd"}, {lookupdBin, "./apps/nsqlookupd"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return nsqdBin, lookupdBin
}

// syncBuf collects a process's output.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid after done
}

// startProc runs bin; at cleanup a still-running process is killed and its
// output logged.
func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// sigterm sends SIGTERM and requires a clean exit (status 0) in time.
func (p *proc) sigterm(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		t.Fatalf("%s still running %s after SIGTERM", p.name, waitLimit)
	}
	if p.err != nil {
		t.Errorf("%s after SIGTERM: %v, want exit status 0", p.name, p.err)
	}
}

// waitPing waits for GET /ping to answer 200 OK (or the process to die).
func waitPing(t *testing.T, p *proc, httpAddr string) {
	t.Helper()
	eventually(t, waitLimit, p.name+" /ping", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited early (%v):\n%s", p.name, p.err, p.out.String())
		default:
		}
		resp, err := httpClient.Get("http://" + httpAddr + "/ping")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

func TestBinariesDiscovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	nsqdBin, lookupdBin := buildBinaries(t, dir)

	addrs := freeAddrs(t, 4)
	lTCP, lHTTP, nTCP, nHTTP := addrs[0], addrs[1], addrs[2], addrs[3]
	l := &lookupd{tcpAddr: lTCP, httpAddr: lHTTP}
	n := &nsqdNode{tcpAddr: nTCP, httpAddr: nHTTP}
	fmt.Sscanf(nTCP[strings.LastIndex(nTCP, ":")+1:], "%d", &n.tcpPort)
	fmt.Sscanf(nHTTP[strings.LastIndex(nHTTP, ":")+1:], "%d", &n.httpPort)

	lp := startProc(t, "nsqlookupd", lookupdBin,
		"--tcp-address="+lTCP, "--http-address="+lHTTP, "--broadcast-address=127.0.0.1")
	waitPing(t, lp, lHTTP)
	dataPath := filepath.Join(dir, "data")
	if err := os.Mkdir(dataPath, 0o755); err != nil {
		t.Fatal(err)
	}
	np := startProc(t, "nsqd", nsqdBin, "--data-path="+dataPath,
		"--tcp-address="+nTCP, "--http-address="+nHTTP,
		"--lookupd-tcp-address="+lTCP, "--broadcast-address=127.0.0.1")
	waitPing(t, np, nHTTP)

	// registered at start-up (IDENTIFY), before any topic exists
	eventually(t, waitLimit, "nsqd in lookupd /nodes", func() (bool, string) {
		ns := l.nodes(t)
		return len(ns) == 1 && ns[0].TCPPort == n.tcpPort && ns[0].HTTPPort == n.httpPort &&
			ns[0].BroadcastAddress == "127.0.0.1" && ns[0].Version == "1.3.0", fmt.Sprintf("%+v", ns)
	})

	const topic = "bin"
	n.pub(t, topic, "hello-bin")
	waitLookupPorts(t, l, topic, n.tcpPort)
	_, r := l.lookup(t, topic)
	if p := r.Producers[0]; p.BroadcastAddress != "127.0.0.1" || p.HTTPPort != n.httpPort || p.Version != "1.3.0" {
		t.Errorf("/lookup producer %+v: want broadcast_address 127.0.0.1, http_port %d, version 1.3.0", p, n.httpPort)
	}

	got := make(chan string, 10)
	c := newConsumer(t, topic, "ch", nsq.HandlerFunc(func(m *nsq.Message) error {
		got <- string(m.Body)
		return nil
	}))
	if err := c.ConnectToNSQLookupd(lHTTP); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-got:
		if body != "hello-bin" {
			t.Errorf("received %q, want hello-bin", body)
		}
	case <-time.After(waitLimit):
		t.Fatal("go-nsq consumer (via nsqlookupd) received nothing")
	}
	stopConsumer(t, c)

	// nsqd stops cleanly and lookupd forgets it (D-LKP-11, L-TCP-10)
	np.sigterm(t)
	waitLookupPorts(t, l, topic)
	lp.sigterm(t)
}
