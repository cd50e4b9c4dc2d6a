package daemons

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var httpClient = &http.Client{Timeout: 5 * time.Second}

// Cmd describes a daemon to start.
type Cmd struct {
	Name string   // in messages, e.g. "nsqd#1"
	Bin  string   // from Build, or another binary
	Args []string // flags
	Dir  string   // working directory; "" is the test's
	// Quiet drops the "started" log line and the output dump at cleanup of
	// a failed test, for tests that start many processes (every restart a
	// new one) and quote the output in their own messages. Fatal messages
	// of this package then carry the output.
	Quiet bool
}

// Proc is one daemon process started by the test.
type Proc struct {
	name  string
	quiet bool
	cmd   *exec.Cmd
	out   *output
	done  chan struct{} // closed when Wait returned
	err   error         // Wait's result, valid after done
}

// Start runs c. At cleanup a still-running process is killed (by its PID,
// nothing else), its output is checked for data races (daemons built with
// -race), and, unless c.Quiet, logged if the test failed.
func Start(t testing.TB, c Cmd) *Proc {
	t.Helper()
	p := &Proc{
		name:  c.Name,
		quiet: c.Quiet,
		cmd:   exec.Command(c.Bin, c.Args...),
		out:   &output{changed: make(chan struct{}, 1)},
		done:  make(chan struct{}),
	}
	p.cmd.Dir = c.Dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", c.Name, err)
	}
	if !c.Quiet {
		t.Logf("started %s (pid %d): %s %s", c.Name, p.PID(), filepath.Base(c.Bin), strings.Join(c.Args, " "))
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
		out := p.Output()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", c.Name)
		}
		if t.Failed() && !c.Quiet {
			t.Logf("%s output:\n%s", c.Name, out)
		}
	})
	return p
}

// Name is Cmd.Name.
func (p *Proc) Name() string { return p.name }

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output is everything the process wrote so far (stdout and stderr).
func (p *Proc) Output() string { return p.out.String() }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed: nil for exit status 0.
func (p *Proc) Err() error { return p.err }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends sig and requires the process to exit within limit with exit
// status 0.
func (p *Proc) Stop(t testing.TB, sig os.Signal, limit time.Duration) {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("%s still running %s after %v%s", p.name, limit, sig, p.outputNote())
	}
	if p.err != nil {
		t.Errorf("%s after %v: %v, want exit status 0", p.name, sig, p.err)
	}
}

// Kill sends SIGKILL (the process must still be running) and waits for the
// exit.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL to %s: %v", p.name, err)
	}
	<-p.done
}

// WaitPing waits up to limit for GET http://httpAddr/ping to answer 200 OK;
// the process exiting first fails the test at once.
func (p *Proc) WaitPing(t testing.TB, httpAddr string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("%s exited early (%v)%s", p.name, p.err, p.outputNote())
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
	t.Fatalf("%s: no 200 from /ping within %s (last: %s)%s", p.name, limit, last, p.outputNote())
}

// WaitListening waits up to limit for the daemon's "<PROTO>: listening on
// <addr>" log line of each of protos ("TCP", "HTTP", "HTTPS") and returns
// the addresses in that order: how a daemon started on port 0 tells where it
// listens. Needs --log-level info or lower.
func (p *Proc) WaitListening(t testing.TB, limit time.Duration, protos ...string) []string {
	t.Helper()
	addrs := make([]string, len(protos))
	timeout := time.After(limit)
	for {
		exited := false
		select {
		case <-p.done: // all output is in once Wait returned
			exited = true
		default:
		}
		out := p.Output()
		missing := ""
		for i, proto := range protos {
			if addrs[i] != "" {
				continue
			}
			if m := listeningRE(proto).FindStringSubmatch(out); m != nil {
				addrs[i] = m[1]
			} else if missing == "" {
				missing = proto
			}
		}
		if missing == "" {
			return addrs
		}
		if exited {
			t.Fatalf("%s exited at start-up (%v)%s", p.name, p.err, p.outputNote())
		}
		select {
		case <-p.out.changed:
		case <-p.done:
		case <-timeout:
			t.Fatalf("%s: no '%s: listening on' line within %s%s", p.name, missing, limit, p.outputNote())
		}
	}
}

// listeningRE matches a complete "<proto>: listening on <addr>" log line.
func listeningRE(proto string) *regexp.Regexp {
	return regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(proto) + `: listening on (\S+)\n`)
}

// outputNote ends a fatal message: the output itself for a quiet process,
// otherwise a pointer to the dump at cleanup.
func (p *Proc) outputNote() string {
	if p.quiet {
		return ":\n" + p.Output()
	}
	return " (output logged below)"
}

// output collects a process's stdout and stderr.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // a token after each write
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	o.buf.Write(b)
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
