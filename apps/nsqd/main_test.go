package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/internal/version"
	"github.com/ournsq/nsq/nsqd"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds ./apps/nsqd once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "nsqd-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "nsqd")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runBinary runs nsqd to completion (bounded) and returns its exit status.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Dir = t.TempDir() // the default data path is the working directory
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("nsqd %q: %v (stderr %q)", args, err, e.String())
	}
	return code, o.String(), e.String()
}

const tsRE = `\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}`

// fatalLine matches a whole stderr of one NSQ fatal line.
func fatalLine(msg string) *regexp.Regexp {
	return regexp.MustCompile(`^\[nsqd\] ` + tsRE + ` FATAL: ` + regexp.QuoteMeta(msg) + "\n$")
}

// TestBinaryHelp: --help exits 0 and lists only flags backed by a `flag:`
// tagged option, our extension options and the four meta flags.
func TestBinaryHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		code, _, stderr := runBinary(t, arg)
		if code != 0 || !strings.HasPrefix(stderr, "Usage of nsqd:\n") {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, stderr)
		}
		fields := optionFields(nsqd.NewOptions(), &extOptions{})
		listed := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(stderr, -1)
		if len(listed) < 10 {
			t.Fatalf("only %d flags in usage", len(listed))
		}
		for _, m := range listed {
			if f, ok := fields[m[1]]; !metaFlags[m[1]] && !(ok && f.active) {
				t.Errorf("--help lists -%s, which has no flag-tagged option", m[1])
			}
		}
	}
}

// TestBinaryBadFlags: unknown flags and bad values exit 2 with the message
// and the usage on stderr (D-CLI-03, D-CLI-07).
func TestBinaryBadFlags(t *testing.T) {
	for _, tc := range []struct {
		arg, msg string
	}{
		{"--bogus", "flag provided but not defined: -bogus"},
		{"--worker-id=5", `invalid boolean value "5" for -worker-id: parse error`},
		{"--log-level=loud", `invalid value "loud" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)`},
		{"--http-address=127.0.0.1:0", "flag provided but not defined: -http-address"},
	} {
		if tc.arg == "--http-address=127.0.0.1:0" {
			if f := optionFields(nsqd.NewOptions())["http-address"]; f.active {
				continue // HTTP has landed; its flag is covered by TestEveryFlag
			}
		}
		code, stdout, stderr := runBinary(t, tc.arg)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, tc.msg+"\nUsage of nsqd:\n") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.arg, code, stdout, stderr)
		}
	}
}

// TestBinaryVersion: D-CLI-01.
func TestBinaryVersion(t *testing.T) {
	code, stdout, stderr := runBinary(t, "--version", "--config=/nonexistent/nsqd.cfg")
	if code != 0 || stdout != version.String("nsqd")+"\n" || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "nsqd v1.3.0 (built w/go") {
		t.Errorf("version line %q", stdout)
	}
	// checked after parsing: a bad flag still wins
	if code, _, _ := runBinary(t, "--version", "--bogus"); code != 2 {
		t.Errorf("--version --bogus: exit %d, want 2", code)
	}
}

// TestBinaryConfigErrors: D-CLI-02, D-CFG-08, D-CFG-04.
func TestBinaryConfigErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.cfg")
	code, _, stderr := runBinary(t, "--config="+missing)
	want := "failed to load config file " + missing + " - open " + missing + ": no such file or directory"
	if code != 1 || !fatalLine(want).MatchString(stderr) {
		t.Errorf("missing config: exit %d, stderr %q", code, stderr)
	}

	code, _, stderr = runBinary(t, "--config="+writeConfig(t, "log_level = \"nope\"\n"))
	if code != 1 || !fatalLine("failed parsing log_level nope").MatchString(stderr) {
		t.Errorf("bad log_level: exit %d, stderr %q", code, stderr)
	}

	code, _, stderr = runBinary(t, "--config="+writeConfig(t, "mem_queue_size = \"abc\"\n"))
	re := regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ERROR: Resolve failed to coerce value abc \(10000\) for field MemQueueSize - strconv.ParseInt: parsing "abc": invalid syntax` + "\n$")
	if code != 1 || !re.MatchString(stderr) {
		t.Errorf("bad mem_queue_size: exit %d, stderr %q", code, stderr)
	}
}

// daemon is a running nsqd whose stderr is collected line by line.
type daemon struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   []string
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, valid after done
}

// startDaemon starts nsqd on loopback and waits for its TCP listener
// (D-CLI-60) or its exit.
func startDaemon(t *testing.T, args ...string) (*daemon, error) {
	t.Helper()
	args = append([]string{"--tcp-address=127.0.0.1:0", "--data-path=" + t.TempDir()}, args...)
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = t.TempDir()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		s := bufio.NewScanner(pipe)
		for s.Scan() {
			d.mu.Lock()
			d.all = append(d.all, s.Text())
			d.mu.Unlock()
			select {
			case d.lines <- s.Text():
			default:
			}
		}
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
	})
	deadline := time.After(15 * time.Second)
	for {
		select {
		case l := <-d.lines:
			if strings.Contains(l, "TCP: listening on") {
				return d, nil
			}
		case <-d.done:
			return d, errors.New("nsqd exited during start-up: " + d.stderr())
		case <-deadline:
			t.Fatalf("nsqd did not start listening within 15s; stderr:\n%s", d.stderr())
		}
	}
}

func (d *daemon) stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.all, "\n")
}

// wait returns the exit status, failing the test after a bounded time.
func (d *daemon) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("nsqd did not exit within 20s; stderr:\n%s", d.stderr())
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	if d.err != nil {
		t.Fatalf("wait: %v", d.err)
	}
	return 0
}

// TestBinarySignals: SIGINT and SIGTERM exit 0 after a graceful shutdown
// (D-CLI-61), and so does SIGHUP (Q-16: the reference dies unflushed), which
// we check by the metadata file it leaves behind.
func TestBinarySignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			dataPath := t.TempDir()
			d, err := startDaemon(t, "--data-path="+dataPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := d.wait(t); code != 0 {
				t.Fatalf("exit %d after %s; stderr:\n%s", code, sig, d.stderr())
			}
			lines := strings.Split(strings.TrimSpace(d.stderr()), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, "NSQ: bye") {
				t.Errorf("last log line %q, want NSQ: bye", last)
			}
			if _, err := os.Stat(filepath.Join(dataPath, "nsqd.dat")); err != nil {
				t.Errorf("no metadata flushed: %v", err)
			}
		})
	}
}

// TestBinaryInstantiateErrors: any nsqd.New error is
// "[nsqd] <ts> FATAL: failed to instantiate nsqd - <err>", exit 1 (D-CLI-06,
// D-CLI-59; Q-10 for the negative queue size).
func TestBinaryInstantiateErrors(t *testing.T) {
	for _, tc := range []struct {
		arg, msg string
	}{
		{"--node-id=1024", "failed to instantiate nsqd - --node-id must be [0,1024)"},
		{"--node-id=-1", "failed to instantiate nsqd - --node-id must be [0,1024)"},
		{"--mem-queue-size=-1", "failed to instantiate nsqd - "},
	} {
		code, _, stderr := runBinary(t, "--tcp-address=127.0.0.1:0", tc.arg)
		re := regexp.MustCompile(`^\[nsqd\] ` + tsRE + ` FATAL: ` + regexp.QuoteMeta(tc.msg) + ".*\n$")
		lines := strings.SplitAfter(stderr, "\n")
		if code != 1 || len(lines) < 2 || !re.MatchString(lines[len(lines)-2]) {
			t.Errorf("%s: exit %d, stderr %q", tc.arg, code, stderr)
		}
		if tc.arg == "--mem-queue-size=-1" && !strings.Contains(stderr, "mem-queue-size") {
			t.Errorf("%s: error does not name the option: %q", tc.arg, stderr)
		}
	}
}

// TestBinaryExampleConfig: nsqd starts with the example file (D-CFG-09).
func TestBinaryExampleConfig(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("..", "..", "contrib", "nsqd.cfg.example"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon(t, "--config="+path, "--tcp-address=127.0.0.1:0", "--verbose")
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, d.stderr())
	}
}
