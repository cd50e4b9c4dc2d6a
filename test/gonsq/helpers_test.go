package gonsq

// Helpers to build and run the real binaries. test/e2e has its own copy
// (test packages cannot import each other's _test.go files).

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait for a daemon; never reached when things work.
const waitLimit = 15 * time.Second

var httpClient = &http.Client{Timeout: 5 * time.Second}

// moduleRoot is the directory of our go.mod (`go env GOMOD`).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside the module")
	}
	return filepath.Dir(gomod)
}

// buildBinaries compiles ./apps/nsqd and ./apps/nsqlookupd into dir. When the
// test itself runs under -race (as `make test` does) the daemons are built
// with -race too, and every daemon's output is checked for data races.
func buildBinaries(t *testing.T, dir string) (nsqdBin, lookupdBin string) {
	t.Helper()
	root := moduleRoot(t)
	nsqdBin = filepath.Join(dir, "nsqd")
	lookupdBin = filepath.Join(dir, "nsqlookupd")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range []struct{ out, pkg string }{{nsqdBin, "./apps/nsqd"}, {lookupdBin, "./apps/nsqlookupd"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"build"}
			if raceEnabled {
				args = append(args, "-race")
			}
			args = append(args, "-o", b.out, b.pkg)
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return nsqdBin, lookupdBin
}

// freeAddrs returns n distinct 127.0.0.1:port addresses that were free a
// moment ago (all held open together, then released).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

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

// proc is one daemon process started by the test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid after done
}

// startProc runs bin in dir. At cleanup a still-running process is killed
// (this PID only), its output is checked for data races, and logged if the
// test failed.
func startProc(t *testing.T, name, dir, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &syncBuf{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("started %s (pid %d): %s %s", name, p.cmd.Process.Pid, filepath.Base(bin), strings.Join(args, " "))
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
		out := p.out.String()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out)
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

// waitPing waits for GET /ping to answer 200 (or the process to die).
func waitPing(t *testing.T, p *proc, httpAddr string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited early (%v):\n%s", p.name, p.err, p.out.String())
		default:
		}
		resp, err := httpClient.Get("http://" + httpAddr + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: no 200 from /ping within %s (last: %s)", p.name, waitLimit, last)
}
