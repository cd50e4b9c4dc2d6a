package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/nsqlookupd"
)

const waitLimit = 10 * time.Second

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// TestMain removes the build directory once every test is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaryPath builds ./apps/nsqlookupd once per test run.
func binaryPath(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "nsqlookupd-bin-")
		if buildErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(buildDir, "nsqlookupd")
		out, err := exec.Command(goBin, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type runResult struct {
	code           int
	stdout, stderr string
}

// runToExit runs the binary to completion (bounded).
func runToExit(t *testing.T, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(binaryPath(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	code := waitExit(t, cmd)
	return runResult{code, stdout.String(), stderr.String()}
}

// waitExit waits for cmd (killing it after waitLimit) and returns its code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(waitLimit):
		cmd.Process.Kill()
		<-done
		t.Fatal("process did not exit in time")
		return -1
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// daemon is a running nsqlookupd process.
type daemon struct {
	cmd       *exec.Cmd
	tcp, http string
	mu        sync.Mutex
	lines     []string
	scanned   chan struct{} // closed when stderr hits EOF
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

var listenRE = regexp.MustCompile(`INFO: (TCP|HTTP): listening on (\S+)$`)

// start runs the binary and waits until both listeners are up.
func start(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(binaryPath(t), args...), scanned: make(chan struct{})}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	addrs := make(chan [2]string, 2)
	go func() {
		defer close(d.scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.lines = append(d.lines, line)
			d.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				addrs <- [2]string{m[1], m[2]}
			}
		}
	}()
	for d.tcp == "" || d.http == "" {
		select {
		case a := <-addrs:
			if a[0] == "TCP" {
				d.tcp = a[1]
			} else {
				d.http = a[1]
			}
		case <-time.After(waitLimit):
			t.Fatalf("daemon did not start; log:\n%s", d.log())
		}
	}
	return d
}

// stop sends sig and returns the exit code.
func (d *daemon) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	// every line read before Wait, which closes the pipe (lines still
	// in it would be lost)
	select {
	case <-d.scanned:
	case <-time.After(waitLimit):
		d.cmd.Process.Kill()
		waitExit(t, d.cmd)
		t.Fatal("stderr not closed")
	}
	return waitExit(t, d.cmd)
}

var httpClient = &http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s -> %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// identify returns the IDENTIFY response of the lookupd at addr.
func identify(t *testing.T, addr string) map[string]interface{} {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	body := []byte(`{"broadcast_address":"n","tcp_port":1,"http_port":2,"version":"1.3.0"}`)
	msg := []byte("  V1IDENTIFY\n")
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(body)))
	c.Write(append(msg, body...))
	var n uint32
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, n)
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatalf("%s: %v", resp, err)
	}
	return m
}

var local = []string{"--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0"}

// L-CLI-01
func TestVersion(t *testing.T) {
	r := runToExit(t, "--version")
	if r.code != 0 || !regexp.MustCompile(`^nsqlookupd v1\.3\.0 \(built w/go[^)]+\)\n$`).MatchString(r.stdout) {
		t.Fatalf("--version: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// Bad flag: message and usage, exit 2; -h exits 0.
func TestBadFlag(t *testing.T) {
	r := runToExit(t, "--bogus")
	if r.code != 2 || !strings.Contains(r.stderr, "flag provided but not defined: -bogus") ||
		!strings.Contains(r.stderr, "-tombstone-lifetime") {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	r = runToExit(t, "--tombstone-lifetime=soon")
	if r.code != 2 || !strings.Contains(r.stderr, `invalid value "soon" for flag -tombstone-lifetime`) {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	r = runToExit(t, "--log-level=loud")
	if r.code != 2 || !strings.Contains(r.stderr, `invalid value "loud" for flag -log-level`) {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	if r = runToExit(t, "-h"); r.code != 0 {
		t.Fatalf("-h: code %d", r.code)
	}
}

var fatalLine = regexp.MustCompile(`^\[nsqlookupd\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} FATAL: `)

// L-CLI-02: log_level in the config is validated.
func TestConfigBadLogLevel(t *testing.T) {
	cfg := writeFile(t, "bad.cfg", `log_level = "nope"`+"\n")
	r := runToExit(t, append([]string{"--config=" + cfg}, local...)...)
	if r.code != 1 || !fatalLine.MatchString(r.stderr) ||
		!strings.HasSuffix(r.stderr, "FATAL: failed parsing log_level nope\n") {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	cfg = writeFile(t, "broken.cfg", "tcp_address = \n")
	r = runToExit(t, append([]string{"--config=" + cfg}, local...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "FATAL: failed to load config file "+cfg) {
		t.Fatalf("broken toml: code %d stderr %q", r.code, r.stderr)
	}
	// D-CFG-04 via go-options: a value that does not coerce.
	cfg = writeFile(t, "coerce.cfg", `tombstone_lifetime = "abc"`+"\n")
	r = runToExit(t, append([]string{"--config=" + cfg}, local...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "ERROR: Resolve failed to coerce value abc") {
		t.Fatalf("coercion: code %d stderr %q", r.code, r.stderr)
	}
	r = runToExit(t, append([]string{"--config=/nonexistent/x.cfg"}, local...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "FATAL: failed to load config file /nonexistent/x.cfg") {
		t.Fatalf("missing file: code %d stderr %q", r.code, r.stderr)
	}
}

// L-CLI-06: a busy port fails start-up with exit 1.
func TestListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := runToExit(t, "--tcp-address="+busy.Addr().String(), "--http-address=127.0.0.1:0")
	want := "FATAL: failed to instantiate nsqlookupd - listen (" + busy.Addr().String() + ") failed - "
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.Contains(l, "FATAL") && !fatalLine.MatchString(l) {
			t.Errorf("bad FATAL line format %q", l)
		}
	}
}

// L-CLI-11, Q-16: SIGINT, SIGTERM and SIGHUP all exit 0 after a clean
// shutdown.
func TestSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			d := start(t, append([]string{"--verbose"}, local...)...) // L-CLI-05: accepted, no effect
			if got := get(t, "http://"+d.http+"/ping"); got != "OK" {
				t.Fatalf("/ping = %q", got)
			}
			if code := d.stop(t, sig); code != 0 {
				t.Fatalf("exit %d; log:\n%s", code, d.log())
			}
			if !strings.Contains(d.log(), "INFO: TCP: closing "+d.tcp) || !strings.Contains(d.log(), "INFO: HTTP: closing "+d.http) {
				t.Fatalf("listeners not closed cleanly; log:\n%s", d.log())
			}
		})
	}
}

// L-CLI-02, D-CFG-01: config values apply; flags beat them.
func TestConfigPrecedence(t *testing.T) {
	cfg := writeFile(t, "x.cfg", `
log_level = "debug"
log_prefix = "[cfg] "
tcp_address = "127.0.0.1:0"
http_address = "127.0.0.1:0"
broadcast_address = "from-config"
inactive_producer_timeout = 1500
tombstone_lifetime = "2s"
bogus_key = 7
`)
	d := start(t, "--config="+cfg)
	if m := identify(t, d.tcp); m["broadcast_address"] != "from-config" {
		t.Errorf("IDENTIFY = %v", m)
	}
	if !strings.HasPrefix(d.log(), "[cfg] ") {
		t.Errorf("log_prefix not applied: %s", d.log())
	}
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}

	d = start(t, "--config="+cfg, "--broadcast-address=from-flag", "--log-prefix=[flag] ")
	if m := identify(t, d.tcp); m["broadcast_address"] != "from-flag" || m["version"] != "1.3.0" {
		t.Errorf("IDENTIFY = %v", m)
	}
	if !strings.HasPrefix(d.log(), "[flag] ") {
		t.Errorf("--log-prefix did not win: %s", d.log())
	}
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// L-CLI-02: contrib/nsqlookupd.cfg.example names every option and loads.
func TestConfigExample(t *testing.T) {
	const example = "../../contrib/nsqlookupd.cfg.example"
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeOf(nsqlookupd.Options{})
	for i := 0; i < typ.NumField(); i++ {
		flag := typ.Field(i).Tag.Get("flag")
		if flag == "" {
			continue
		}
		key := strings.ReplaceAll(flag, "-", "_")
		if !regexp.MustCompile(`(?m)^#? ?` + key + ` = `).Match(b) {
			t.Errorf("example lacks %s", key)
		}
	}
	cfg, err := loadConfig(example)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg) == 0 {
		t.Fatal("example decoded to nothing")
	}
	d := start(t, append([]string{"--config=" + example}, local...)...)
	if code := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
