package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// Server limits. NSQ ran net/http without any, which lets a client that
// never finishes its headers hold a connection and a goroutine forever.
// Request bodies are not time-limited here (a slow /mpub upload is
// legitimate); handlers bound body sizes themselves.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 1 << 20
)

// Server serves one listener. Serve runs in a goroutine of the caller's
// choosing; Shutdown may be called from any other goroutine, once.
type Server struct {
	// HTTP is the underlying server, exported so callers can adjust it
	// (TLS, timeouts) before Serve.
	HTTP *http.Server

	// Fast, if set before Serve, is served on the fast path (fast.go).
	Fast FastRoute

	ln    net.Listener
	proto string
	logf  LogFunc
	fast  atomic.Pointer[fastServer]
}

// NewServer prepares h to be served on ln. proto names the server in log
// lines ("HTTP", "HTTPS"). net/http's own error log (bad TLS handshakes,
// superfluous WriteHeader calls) goes to logf at WARN.
func NewServer(ln net.Listener, h http.Handler, proto string, logf LogFunc) *Server {
	return &Server{
		HTTP: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			IdleTimeout:       DefaultIdleTimeout,
			MaxHeaderBytes:    DefaultMaxHeaderBytes,
			ErrorLog:          log.New(logWriter{logf}, "", 0),
		},
		ln:    ln,
		proto: proto,
		logf:  logf,
	}
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve blocks until Shutdown (returning nil) or until the listener fails
// (returning the error). It logs "<proto>: listening on <addr>" and
// "<proto>: closing <addr>".
func (s *Server) Serve() error {
	s.logf(lg.INFO, "%s: listening on %s", s.proto, s.ln.Addr())
	var err error
	if s.Fast == nil {
		err = s.HTTP.Serve(s.ln)
	} else {
		err = s.serveFast()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("http.Serve() error - %w", err)
	}
	s.logf(lg.INFO, "%s: closing %s", s.proto, s.ln.Addr())
	return nil
}

// serveFast runs the fast path's accept loop here and net/http on the
// connections it hands over.
func (s *Server) serveFast() error {
	fs := newFastServer(s.Fast, s.ln, s.HTTP, s.logf)
	s.fast.Store(fs)
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.HTTP.Serve(fs.handoff) }()
	err := fs.acceptLoop()
	if err != nil {
		fs.handoff.Close()
	}
	if herr := <-httpDone; err == nil {
		err = herr
	}
	return err
}

// FastAnswers is the number of requests answered on the fast path.
func (s *Server) FastAnswers() int64 {
	if fs := s.fast.Load(); fs != nil {
		return fs.answered.Load()
	}
	return 0
}

// Shutdown stops accepting, lets requests in progress finish for at most
// timeout, then closes every remaining connection. It returns once all
// connections are closed. The listener is closed even if Serve never ran.
func (s *Server) Shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	fs := s.fast.Load()
	fastDone := make(chan struct{})
	if fs != nil {
		go func() {
			fs.shutdown(ctx.Done())
			close(fastDone)
		}()
	} else {
		close(fastDone)
	}
	err := s.HTTP.Shutdown(ctx)
	if err != nil {
		// Requests still running (a 30 s pprof profile, a stalled upload):
		// cut them off rather than hang the daemon's exit.
		err = s.HTTP.Close()
	}
	s.ln.Close()
	<-fastDone
	return err
}

// logWriter adapts net/http's *log.Logger output to a LogFunc.
type logWriter struct{ logf LogFunc }

func (l logWriter) Write(p []byte) (int, error) {
	l.logf(lg.WARN, "%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
