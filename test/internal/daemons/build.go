// Package daemons builds this module's nsqd and nsqlookupd binaries and runs
// them as child processes of a test, for the tests under test/.
//
// A test package that uses it runs its tests through Run:
//
//	func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }
//
// Build then compiles the binaries once per test binary (into a temporary
// directory Run removes), and Start runs one as a child process: its output
// is captured, and at the end of the test it is killed by its PID if still
// running. Addresses are 127.0.0.1 with kernel-chosen ports, either picked
// free just before use (FreeAddrs) or bound by the daemon itself (port 0,
// read back with Proc.WaitListening). Every wait has a bound.
package daemons

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binaries are the paths of the built daemons.
type Binaries struct {
	NSQD       string
	NSQLookupd string
}

// build is one flavour (plain or -race) of Binaries, built at most once.
type build struct {
	once sync.Once
	bins Binaries
	err  error
}

var (
	mu     sync.Mutex
	binDir string // set while Run runs
	builds = map[bool]*build{}
)

// Run runs the tests of m and then removes what Build compiled; a package
// that calls Build must use it as its TestMain (see the package comment).
func Run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nsq-daemons-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	mu.Lock()
	binDir = dir
	mu.Unlock()
	defer func() {
		mu.Lock()
		binDir = ""
		mu.Unlock()
	}()
	return m.Run()
}

// Build returns nsqd and nsqlookupd compiled from ./apps/nsqd and
// ./apps/nsqlookupd of this module, with -race when race is true (pass
// RaceEnabled to follow the test binary). They are built in parallel once
// per test binary and flavour; concurrent callers wait for that one build,
// and a failed build fails every caller.
func Build(t testing.TB, race bool) Binaries {
	t.Helper()
	mu.Lock()
	dir := binDir
	b := builds[race]
	if b == nil {
		b = &build{}
		builds[race] = b
	}
	mu.Unlock()
	if dir == "" {
		t.Fatal("daemons.Build: the package's TestMain must run the tests through daemons.Run")
	}
	b.once.Do(func() {
		flavour := "plain"
		if race {
			flavour = "race"
		}
		b.bins, b.err = buildBinaries(filepath.Join(dir, flavour), race)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bins
}

func buildBinaries(dir string, race bool) (Binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return Binaries{}, err
	}
	bins := Binaries{NSQD: filepath.Join(dir, "nsqd"), NSQLookupd: filepath.Join(dir, "nsqlookupd")}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range []struct{ out, pkg string }{{bins.NSQD, "./apps/nsqd"}, {bins.NSQLookupd, "./apps/nsqlookupd"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"build"}
			if race {
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
	return bins, errors.Join(errs...)
}

// ModuleRoot is the directory of this module's go.mod (`go env GOMOD`).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// FreeAddrs returns n distinct 127.0.0.1:port addresses that were free a
// moment ago (all held open together, then released), for daemons that must
// be told their addresses up front (to restart on the same ones, or to hand
// them to others first).
func FreeAddrs(t testing.TB, n int) []string {
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

// Port is the port of a host:port address.
func Port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
