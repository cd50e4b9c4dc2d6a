package nsqlookupd

import (
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// L-CLI-03, L-CLI-04, L-CLI-06..10: defaults.
func TestNewOptionsDefaults(t *testing.T) {
	o := NewOptions()
	if o.TCPAddress != "0.0.0.0:4160" || o.HTTPAddress != "0.0.0.0:4161" || o.LogLevel != lg.INFO ||
		o.LogPrefix != "[nsqlookupd] " || o.InactiveProducerTimeout != 300*time.Second ||
		o.TombstoneLifetime != 45*time.Second || o.ClientTimeout != 60*time.Second {
		t.Fatalf("defaults: %+v", o)
	}
	if o.BroadcastAddress == "" {
		t.Fatal("broadcast address should default to the hostname")
	}
}

// L-CLI-06: a busy port fails New with "listen (<addr>) failed - <err>".
func TestNewListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, field := range []string{"tcp", "http"} {
		o := NewOptions()
		o.Logger = lg.NilLogger{}
		o.TCPAddress, o.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
		if field == "tcp" {
			o.TCPAddress = busy.Addr().String()
		} else {
			o.HTTPAddress = busy.Addr().String()
		}
		_, err := New(o)
		if err == nil || !strings.HasPrefix(err.Error(), "listen ("+busy.Addr().String()+") failed - ") {
			t.Fatalf("%s: err = %v", field, err)
		}
	}
}

// Exit before Main: Main returns at once, the listeners are closed.
func TestExitBeforeMain(t *testing.T) {
	o := NewOptions()
	o.Logger = lg.NilLogger{}
	o.TCPAddress, o.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	l.Exit()
	l.Exit()
	done := make(chan error, 1)
	go func() { done <- l.Main() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Main did not return after Exit")
	}
	for _, a := range []string{l.RealTCPAddr().String(), l.RealHTTPAddr().String()} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listening", a)
		}
	}
}

// Every goroutine started by nsqlookupd is gone after Exit, with TCP peers
// and HTTP requests having come and gone (and some still connected).
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		o := NewOptions()
		o.Logger = lg.NilLogger{}
		o.TCPAddress, o.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
		// The half-sent HTTP request below holds Shutdown for this long.
		o.HTTPShutdownTimeout = 200 * time.Millisecond
		l, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Main() }()

		var conns []net.Conn
		for i := 0; i < 5; i++ {
			c := nsqdPeer(t, l, nil)
			c.cmd("REGISTER t c")
			c.expect("OK")
			conns = append(conns, c.Conn)
		}
		conns[0].Close()
		idle := dialRaw(t, l)
		getBody(t, l, "/nodes")
		// An HTTP connection left open mid-request.
		half, err := net.Dial("tcp", l.RealHTTPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer half.Close()
		half.Write([]byte("GET /ping HTTP/1.1\r\nHost: x\r\n"))

		l.Exit()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		idle.Close()
		for _, c := range conns {
			c.Close()
		}
	}()
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
