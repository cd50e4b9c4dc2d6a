package nsqlookupd

// FuzzV1Stream (robustness issue, part 1): arbitrary bytes after the "  V1"
// magic, through the real listener and ioLoop of one nsqlookupd started per
// fuzz process. Oracles on every input:
//
//   - every answer is [int32 BE len][data] with 0 <= len <= a sane bound, and
//     data is OK, a JSON object (IDENTIFY) or "E_<CODE>[ text]";
//   - every V1 error is fatal (L-TCP-03): nothing follows it but the close;
//   - once the connection is closed the peer is in no registration
//     (L-TCP-10);
//   - the daemon stays up: a fresh connection gets OK for PING.
//
// Seeds: testdata/fuzz/FuzzV1Stream (regenerate with
// NSQ_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./nsqlookupd).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

const (
	fzIOTimeout = 10 * time.Second
	// an error may quote a whole 64 KiB command line
	fzMaxAnswer = 2 * maxLineLength
	// above this many registration keys the fuzz instance is emptied
	fzMaxRegistrations = 256
)

type fzDiscardLogger struct{}

func (fzDiscardLogger) Output(int, string) error { return nil }

func fzStartLookupd(f *testing.F) *NSQLookupd {
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.BroadcastAddress = "lookupd.fuzz"
	opts.Logger = fzDiscardLogger{}
	opts.HTTPShutdownTimeout = time.Second
	if os.Getenv("NSQ_FUZZ_LOG") != "" {
		opts.Logger = nil
		opts.LogLevel = lg.DEBUG
	}
	l, err := New(opts)
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Main()
	}()
	f.Cleanup(func() {
		l.Exit()
		<-done
	})
	return l
}

var fzErrorRE = regexp.MustCompile(`^E_[A-Z_]+( |$)`)

func fzIsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// fzReadAnswers reads and checks V1 answers until the connection closes.
func fzReadAnswers(t *testing.T, r io.Reader) [][]byte {
	t.Helper()
	br := bufio.NewReader(r)
	var answers [][]byte
	fatal := ""
	for {
		var hdr [4]byte
		n, err := io.ReadFull(br, hdr[:])
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("nsqlookupd neither answered nor closed within %s (answers so far %q)", fzIOTimeout, answers)
			case fzIsReset(err), n == 0 && err == io.EOF:
				return answers
			}
			t.Fatalf("partial length (%d bytes): %v (answers so far %q)", n, err, answers)
		}
		size := int32(binary.BigEndian.Uint32(hdr[:]))
		if size < 0 || size > fzMaxAnswer {
			t.Fatalf("answer length %d (answers so far %q)", size, answers)
		}
		data := make([]byte, size)
		if n, err := io.ReadFull(br, data); err != nil {
			if fzIsReset(err) {
				return answers
			}
			t.Fatalf("answer of %d bytes cut after %d: %v", size, n, err)
		}
		if fatal != "" {
			t.Fatalf("answer %q after the error %q", data, fatal)
		}
		switch {
		case string(data) == "OK":
		case len(data) > 0 && data[0] == '{':
			var resp identifyResponse
			if err := json.Unmarshal(data, &resp); err != nil || resp.Version == "" || resp.TCPPort == 0 {
				t.Fatalf("bad IDENTIFY answer %q (%v)", data, err)
			}
		case fzErrorRE.Match(data):
			fatal = string(data)
		default:
			t.Fatalf("answer %q is neither OK, JSON nor an error", data)
		}
		answers = append(answers, data)
	}
}

func fzDial(t *testing.T, l *NSQLookupd) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.RealTCPAddr().String(), fzIOTimeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetDeadline(time.Now().Add(fzIOTimeout))
	return c.(*net.TCPConn)
}

// fzPeerRegistrations lists the keys in which peer id still appears.
func fzPeerRegistrations(l *NSQLookupd, id string) []Registration {
	var regs []Registration
	for k, producers := range l.DB().Dump() {
		for _, p := range producers {
			if p.Peer.ID() == id {
				regs = append(regs, k)
			}
		}
	}
	return regs
}

func FuzzV1Stream(f *testing.F) {
	l := fzStartLookupd(f)
	f.Fuzz(func(t *testing.T, input []byte) {
		conn := fzDial(t, l)
		defer conn.Close()
		id := conn.LocalAddr().String()
		wdone := make(chan struct{})
		go func() {
			defer close(wdone)
			conn.Write(append([]byte(magicV1), input...))
			conn.CloseWrite()
		}()
		fzReadAnswers(t, conn)
		conn.Close()
		<-wdone
		// the close comes after the peer is unregistered (tcp.go)
		if regs := fzPeerRegistrations(l, id); len(regs) > 0 {
			t.Fatalf("peer %s still registered in %v after its connection closed", id, regs)
		}

		// the daemon is still up
		probe := fzDial(t, l)
		defer probe.Close()
		if _, err := probe.Write([]byte(magicV1 + "PING\n")); err != nil {
			t.Fatalf("probe: %v", err)
		}
		var hdr [6]byte
		if _, err := io.ReadFull(probe, hdr[:]); err != nil || string(hdr[4:]) != "OK" {
			t.Fatalf("probe PING: %q %v", hdr, err)
		}
		probe.Close()

		if dump := l.DB().Dump(); len(dump) > fzMaxRegistrations {
			for k := range dump {
				l.DB().RemoveRegistration(k)
			}
		}
	})
}

// ---- seeds ----

func fzIdentify(body string) []byte {
	b := []byte("IDENTIFY\n")
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func fzCat(parts ...interface{}) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		case int:
			b = binary.BigEndian.AppendUint32(b, uint32(int32(v)))
		}
	}
	return b
}

func fzV1Seeds() map[string][]byte {
	id := `{"broadcast_address":"nsqd.fuzz","hostname":"h","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"z","topology_region":"r"}`
	return map[string][]byte{
		"empty":                 nil,
		"ping":                  fzCat("PING\n"),
		"ping-crlf":             fzCat("PING\r\n"),
		"ping-spaces":           fzCat("  PING  \n"),
		"lowercase":             fzCat("ping\n"),
		"invalid":               fzCat("FOO bar\n"),
		"no-newline":            fzCat("PING"),
		"identify":              fzCat(fzIdentify(id), "PING\n"),
		"identify-register":     fzCat(fzIdentify(id), "REGISTER t c\nREGISTER t\nUNREGISTER t c\nUNREGISTER t\nPING\n"),
		"identify-eph":          fzCat(fzIdentify(id), "REGISTER t#ephemeral c#ephemeral\nUNREGISTER t#ephemeral c#ephemeral\n"),
		"identify-twice":        fzCat(fzIdentify(id), fzIdentify(id)),
		"identify-missing":      fzCat(fzIdentify(`{"broadcast_address":"x"}`)),
		"identify-bad-json":     fzCat(fzIdentify(`{"tcp_port":"x"`)),
		"identify-zero":         fzCat("IDENTIFY\n", 0),
		"identify-negative":     fzCat("IDENTIFY\n", -1),
		"identify-huge":         fzCat("IDENTIFY\n", 0x7fffffff),
		"identify-over-max":     fzCat("IDENTIFY\n", maxIdentifyBodySize+1),
		"identify-short":        fzCat("IDENTIFY\n", 100, "{}"),
		"register-first":        fzCat("REGISTER t c\n"),
		"register-no-params":    fzCat(fzIdentify(id), "REGISTER\n"),
		"register-bad-topic":    fzCat(fzIdentify(id), "REGISTER bad!topic\n"),
		"register-bad-channel":  fzCat(fzIdentify(id), "REGISTER t bad!chan\n"),
		"unregister-no-params":  fzCat(fzIdentify(id), "UNREGISTER\n"),
		"unregister-unknown":    fzCat(fzIdentify(id), "UNREGISTER nope x\n"),
		"register-extra-params": fzCat(fzIdentify(id), "REGISTER t c d e\n"),
		"long-line":             bytes.Repeat([]byte("A"), maxLineLength+10),
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("NSQ_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set NSQ_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzV1Stream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, input := range fzV1Seeds() {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(input)))
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
