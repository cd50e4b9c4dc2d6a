// Package gonsq runs go-nsq v1.1.0's own test suite against our built nsqd
// and nsqlookupd, the way go-nsq's CI (its test.sh) runs it against NSQ's:
//
//	nsqlookupd &
//	nsqd --data-path=<tmp> --lookupd-tcp-address=127.0.0.1:4160 \
//	     --tls-cert=./test/server.pem --tls-key=./test/server.key \
//	     --tls-root-ca-file=./test/ca.pem &
//	go test -v
//
// The module is copied from the module cache into a temp dir, and the fixed
// addresses its tests use (127.0.0.1:4150 for TCP, port 4151 for HTTP) are
// rewritten in the copy to free random ports, so this never collides with
// anything else on the machine. Nothing of go-nsq is kept in our repository.
//
// Every go-nsq test must pass, none may be skipped or missing, and the TLS,
// Deflate and Snappy variants must really have negotiated their feature
// with our nsqd (go-nsq would silently fall back to plain TCP otherwise, and
// the test would still pass). See docs/compatibility.md.
package gonsq

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/test/internal/daemons"
)

const goNSQModule = "github.com/nsqio/go-nsq@v1.1.0"

// suiteLimit bounds the whole `go test` run of go-nsq (compile included).
const suiteLimit = 3 * time.Minute

// waitLimit bounds every wait for a daemon; never reached when things work.
const waitLimit = 15 * time.Second

var httpClient = &http.Client{Timeout: 5 * time.Second}

func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }

func TestGoNSQSuite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	src := goNSQDir(t)
	suite := filepath.Join(dir, "go-nsq")
	copyTree(t, src, suite)

	bins := daemons.Build(t, daemons.RaceEnabled)
	addrs := daemons.FreeAddrs(t, 5)
	lTCP, lHTTP, nTCP, nHTTP, nHTTPS := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]

	rewriteAddresses(t, suite, nTCP, daemons.Port(nHTTP))
	expected := suiteTests(t, suite)

	dataPath := filepath.Join(dir, "data")
	if err := os.Mkdir(dataPath, 0o755); err != nil {
		t.Fatal(err)
	}
	// Started from the go-nsq copy, as test.sh does, so the relative
	// ./test/*.pem paths are go-nsq's bundled certificates.
	lp := daemons.Start(t, daemons.Cmd{Name: "nsqlookupd", Bin: bins.NSQLookupd, Dir: suite,
		Args: []string{"--tcp-address=" + lTCP, "--http-address=" + lHTTP}})
	lp.WaitPing(t, lHTTP, waitLimit)
	np := daemons.Start(t, daemons.Cmd{Name: "nsqd", Bin: bins.NSQD, Dir: suite, Args: []string{
		"--data-path=" + dataPath,
		"--tcp-address=" + nTCP, "--http-address=" + nHTTP, "--https-address=" + nHTTPS,
		"--lookupd-tcp-address=" + lTCP,
		"--tls-cert=./test/server.pem", "--tls-key=./test/server.key",
		"--tls-root-ca-file=./test/ca.pem"}})
	np.WaitPing(t, nHTTP, waitLimit)

	out, runErr := runSuite(t, suite)
	results, sections := parseGoTest(out)
	for name, res := range results {
		if res != "PASS" && neverTalksToUs(name) {
			// go-nsq's own timing races (its in-process mock nsqd re-binding
			// a port it just closed, RDY commands of a pausing Consumer
			// crossing, a reconnect outlasting the mock's 1 s wait) on a
			// loaded machine: our daemons are not involved, run it once more
			t.Logf("NOTE: %s failed and never talks to our daemons (go-nsq's mock nsqd or an httptest lookupd); running it again", name)
			again, err := runSuite(t, suite, "-run", "^"+name+"$")
			r, _ := parseGoTest(again)
			results[name] = r[name]
			if err == nil && r[name] == "PASS" && runErr != nil && !strings.Contains(out, "panic:") {
				runErr = nil // that test was the only failure
			}
		}
	}

	// the table, in source order
	var failed []string
	t.Log("go-nsq v1.1.0 suite against our nsqd/nsqlookupd:")
	for _, name := range expected {
		res, ok := results[name]
		switch {
		case !ok:
			res = "MISSING (never reported)"
			failed = append(failed, name+" (missing)")
		case res != "PASS":
			failed = append(failed, name+" ("+res+")")
		}
		if why := featureCheck(name, sections[name]); why != "" && res == "PASS" {
			res = "PASS but " + why
			failed = append(failed, name+" ("+why+")")
		}
		t.Logf("  %-36s %s", name, res)
	}
	for name, res := range results {
		if !slices.Contains(expected, name) && res != "PASS" {
			failed = append(failed, name+" ("+res+")")
		}
	}
	if runErr != nil && len(failed) == 0 {
		if name, ok := knownLateLogPanic(out); ok {
			t.Logf("NOTE: every go-nsq test passed, then the go-nsq test binary panicked: a Consumer that %s "+
				"never stops (go-nsq's in-process mock nsqd, not our daemons) logged through t.Log after the "+
				"last test had finished. A known go-nsq v1.1.0 test-suite race, identical against NSQ's own "+
				"nsqd; not counted as a failure. See docs/compatibility.md.", name)
		} else {
			t.Errorf("go test of go-nsq failed without a failing test: %v", runErr)
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		t.Errorf("%d go-nsq test(s) failed against our daemons:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}

	logTopics(t, nHTTP)
	np.Stop(t, syscall.SIGTERM, waitLimit)
	lp.Stop(t, syscall.SIGTERM, waitLimit)
}

// goNSQDir locates go-nsq v1.1.0 in the module cache (downloading it if the
// cache lacks it), via `go mod download -json`.
func goNSQDir(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", goNSQModule)
	cmd.Dir = daemons.ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", goNSQModule, err, out)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("go mod download -json: %v\n%s", err, out)
	}
	if m.Error != "" || m.Dir == "" {
		t.Fatalf("go mod download %s: %q (dir %q)", goNSQModule, m.Error, m.Dir)
	}
	return m.Dir
}

// copyTree copies the (read-only) module directory into dst, writable.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// rewriteAddresses points the copied tests at our daemons: "127.0.0.1:4150"
// (the nsqd TCP address; "1.2.3.4:4150" stays, it is meant to be
// unreachable) and the HTTP port 4151 passed to SendMessage.
func rewriteAddresses(t *testing.T, dir, tcpAddr, httpPort string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s (%v)", dir, err)
	}
	repl := []struct{ old, new string }{
		{`"127.0.0.1:4150"`, `"` + tcpAddr + `"`},
		{`SendMessage(t, 4151,`, `SendMessage(t, ` + httpPort + `,`},
	}
	counts := make([]int, len(repl))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for i, r := range repl {
			counts[i] += strings.Count(s, r.old)
			s = strings.ReplaceAll(s, r.old, r.new)
		}
		// nothing else may still point at the default ports
		if m := stalePortRE.FindString(strings.ReplaceAll(s, "1.2.3.4:4150", "")); m != "" {
			t.Fatalf("%s still mentions %q after the rewrite: the go-nsq test files changed?", filepath.Base(f), m)
		}
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range repl {
		if counts[i] == 0 {
			t.Fatalf("rewrite %q matched nothing: the go-nsq test files changed?", r.old)
		}
		t.Logf("rewrote %d x %s -> %s", counts[i], r.old, r.new)
	}
}

var (
	// a default nsqd/nsqlookupd port as a whole number (not part of a
	// random port such as 41503)
	stalePortRE = regexp.MustCompile(`\b(4150|4151|4160|4161)\b`)
	testFuncRE  = regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
)

// suiteTests lists the copied suite's top-level tests, in file order.
func suiteTests(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	sort.Strings(files)
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testFuncRE.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatal("no Test functions found in the go-nsq copy")
	}
	return names
}

// neverTalksToUs reports whether a go-nsq test runs only against go-nsq's
// in-process mock nsqd (mock_test.go) or an httptest lookupd
// (TestConsumerLookupdAuthorization), never against our daemons.
func neverTalksToUs(name string) bool {
	switch name {
	case "TestConsumerBackoff", "TestConsumerRequeueNoBackoff", "TestConsumerBackoffDisconnect",
		"TestConsumerPause", "TestConsumerLookupdAuthorization":
		return true
	}
	return false
}

// runSuite runs `go test -v` in the copy (with extra arguments, e.g. -run),
// streaming every line to t.Log.
func runSuite(t *testing.T, dir string, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), suiteLimit)
	defer cancel()
	args := append([]string{"test", "-count=1", "-v", "-timeout", "120s"}, extra...)
	cmd := exec.CommandContext(ctx, "go", append(args, "./...")...)
	cmd.Dir = dir
	cmd.Env = suiteEnv()
	// own process group: on timeout the go command and its test binary go
	// together (this group only)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second

	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var all strings.Builder
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			all.WriteString(line + "\n")
			t.Log("go-nsq| " + line)
		}
		io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	t.Logf("running go %s ./... in %s", strings.Join(args, " "), dir)
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	pw.Close()
	<-scanned
	if ctx.Err() != nil {
		t.Errorf("go-nsq suite killed after %s", suiteLimit)
	}
	t.Logf("go-nsq suite finished in %s (%v)", time.Since(start).Round(time.Millisecond), err)
	return all.String(), err
}

// suiteEnv: our environment, with go-nsq's go.mod (go 1.11, no go.sum for
// everything) allowed to resolve, outside any workspace, with this toolchain.
func suiteEnv() []string {
	var env []string
	goflags := "-mod=mod"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GOFLAGS="):
			for _, f := range strings.Fields(strings.TrimPrefix(kv, "GOFLAGS=")) {
				if !strings.HasPrefix(f, "-mod=") {
					goflags += " " + f
				}
			}
		case strings.HasPrefix(kv, "GOWORK="), strings.HasPrefix(kv, "GOTOOLCHAIN="):
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GOFLAGS="+goflags, "GOWORK=off", "GOTOOLCHAIN=local")
}

var (
	runRE    = regexp.MustCompile(`^=== (?:RUN|CONT)\s+(Test\w+)$`)
	resultRE = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (Test\w+) \(`)
)

// parseGoTest returns each top-level test's result and the output lines
// logged while it ran (go-nsq's tests are sequential).
func parseGoTest(out string) (results map[string]string, sections map[string]string) {
	results, sections = map[string]string{}, map[string]string{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if m := runRE.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if m := resultRE.FindStringSubmatch(line); m != nil {
			results[m[2]] = m[1]
			continue
		}
		if cur != "" {
			sections[cur] += line + "\n"
		}
	}
	return results, sections
}

var lateLogRE = regexp.MustCompile(`(?m)^panic: Log in goroutine after (Test\w+) has completed`)

// knownLateLogPanic recognises go-nsq's own test-suite race: tests that
// leave a Consumer running (it keeps reconnecting, or polling a closed
// lookupd, and logs through the finished test's t.Log) make the test binary
// panic if such a line comes after the last test has finished, i.e. after
// "PASS". Only the tests that never talk to our daemons qualify
// (neverTalksToUs).
func knownLateLogPanic(out string) (string, bool) {
	m := lateLogRE.FindStringSubmatchIndex(out)
	if m == nil {
		return "", false
	}
	name := out[m[2]:m[3]]
	if !neverTalksToUs(name) {
		return name, false
	}
	// the panic came after the suite's final PASS
	pass := strings.LastIndex(out[:m[0]], "\nPASS\n")
	return name, pass >= 0
}

// featureCheck: a go-nsq client whose IDENTIFY response does not grant a
// feature silently goes on without it, so a passing TLS/Deflate/Snappy test
// proves nothing unless the upgrade is in its log.
func featureCheck(name, section string) string {
	if !strings.HasPrefix(name, "TestConsumer") {
		return ""
	}
	var missing []string
	for _, f := range []struct{ feature, line string }{
		{"TLS", "upgrading to TLS"},
		{"Deflate", "upgrading to Deflate"},
		{"Snappy", "upgrading to Snappy"},
	} {
		if strings.Contains(name, f.feature) && !strings.Contains(section, f.line) {
			missing = append(missing, fmt.Sprintf("no %q in its log", f.line))
		}
	}
	return strings.Join(missing, ", ")
}

// logTopics logs what the suite left in our nsqd (proof it was the target).
func logTopics(t *testing.T, httpAddr string) {
	t.Helper()
	resp, err := httpClient.Get("http://" + httpAddr + "/stats?format=json")
	if err != nil {
		t.Errorf("nsqd /stats after the suite: %v", err)
		return
	}
	defer resp.Body.Close()
	var st struct {
		Topics []struct {
			TopicName    string `json:"topic_name"`
			MessageCount uint64 `json:"message_count"`
		} `json:"topics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Errorf("nsqd /stats: %v", err)
		return
	}
	var parts []string
	for _, tp := range st.Topics {
		parts = append(parts, fmt.Sprintf("%s=%d", tp.TopicName, tp.MessageCount))
	}
	t.Logf("topics in our nsqd after the suite (%d): %s", len(st.Topics), strings.Join(parts, " "))
	if len(st.Topics) == 0 {
		t.Error("our nsqd saw no topic: the suite did not talk to it")
	}
}
