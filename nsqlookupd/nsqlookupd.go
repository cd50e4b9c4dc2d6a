// Package nsqlookupd is the discovery service: it owns the TCP protocol V1
// that nsqd instances use to announce their topics and channels, the
// in-memory registration DB those announcements fill, and the HTTP API that
// consumers and nsqadmin query (spec section 6).
//
// Goroutines and what they own:
//   - the TCP accept loop (tcp.go) owns the TCP listener; it registers each
//     connection in tcpServer.conns (mutex) and starts one goroutine per
//     connection;
//   - each connection goroutine owns its clientV1 (reader, peer pointer) and
//     is the only writer of its PeerInfo (lastUpdate atomically);
//   - the HTTP server (internal/httpapi) runs one goroutine per request;
//   - the RegistrationDB is shared by all of them behind one RWMutex.
//
// Lifecycle: New binds both listeners; Main serves until Exit or a listener
// failure; Exit closes listeners and every connection and waits for every
// goroutine started here.
package nsqlookupd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/ournsq/nsq/internal/httpapi"
	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/version"
)

// NSQLookupd is one discovery-service instance.
type NSQLookupd struct {
	opts     *Options // read-only after New
	hostname string   // OS hostname, reported in IDENTIFY responses
	db       *RegistrationDB

	tcpListener net.Listener
	tcp         *tcpServer
	http        *httpapi.Server

	// mu guards exiting and orders wg.Add in Main against wg.Wait in Exit.
	mu      sync.Mutex
	exiting bool
	exitCh  chan struct{} // closed by Exit
	// wg counts the accept loop, the HTTP server and (added by the accept
	// loop while it is itself counted) every connection goroutine.
	wg       sync.WaitGroup
	exitOnce sync.Once
}

// New binds the TCP and HTTP listeners (port 0 is allowed; see RealTCPAddr,
// RealHTTPAddr). It does not serve until Main.
func New(opts *Options) (*NSQLookupd, error) {
	if opts.Logger == nil {
		opts.Logger = lg.New(opts.LogPrefix)
	}
	if opts.ClientTimeout <= 0 {
		return nil, errors.New("client timeout must be positive")
	}
	hostname, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("unable to get hostname - %w", err)
	}
	l := &NSQLookupd{
		opts:     opts,
		hostname: hostname,
		db:       NewRegistrationDB(),
		exitCh:   make(chan struct{}),
	}
	l.logf(lg.INFO, "%s", version.String("nsqlookupd"))

	l.tcpListener, err = net.Listen("tcp", opts.TCPAddress)
	if err != nil {
		return nil, fmt.Errorf("listen (%s) failed - %w", opts.TCPAddress, err)
	}
	httpListener, err := net.Listen("tcp", opts.HTTPAddress)
	if err != nil {
		l.tcpListener.Close()
		return nil, fmt.Errorf("listen (%s) failed - %w", opts.HTTPAddress, err)
	}
	l.tcp = newTCPServer(l, l.tcpListener)
	l.http = httpapi.NewServer(httpListener, newHTTPHandler(l), "HTTP", l.logf)
	return l, nil
}

// logf writes one line at level through the configured logger.
func (l *NSQLookupd) logf(level lg.LogLevel, f string, args ...interface{}) {
	lg.Logf(l.opts.Logger, l.opts.LogLevel, level, f, args...)
}

// RealTCPAddr is the bound TCP address.
func (l *NSQLookupd) RealTCPAddr() *net.TCPAddr { return l.tcpListener.Addr().(*net.TCPAddr) }

// RealHTTPAddr is the bound HTTP address.
func (l *NSQLookupd) RealHTTPAddr() *net.TCPAddr { return l.http.Addr().(*net.TCPAddr) }

// DB is the registration database (for tests and embedding).
func (l *NSQLookupd) DB() *RegistrationDB { return l.db }

// Main serves TCP and HTTP. It returns nil after Exit, or the first listener
// error (the caller should then call Exit). Call it once.
func (l *NSQLookupd) Main() error {
	l.mu.Lock()
	if l.exiting {
		l.mu.Unlock()
		return nil
	}
	errCh := make(chan error, 2)
	l.wg.Add(2)
	l.mu.Unlock()

	go func() {
		defer l.wg.Done()
		errCh <- l.tcp.serve()
	}()
	go func() {
		defer l.wg.Done()
		errCh <- l.http.Serve()
	}()

	for {
		select {
		case <-l.exitCh:
			return nil
		case err := <-errCh:
			if err != nil {
				l.logf(lg.FATAL, "%s", err)
				return err
			}
			// A server stopped cleanly: that only happens during Exit.
		}
	}
}

// Exit shuts down: it stops both listeners, lets HTTP requests in progress
// finish (bounded by HTTPShutdownTimeout), closes every TCP connection (whose
// registrations are then removed) and waits for every goroutine. Safe to call
// more than once and from any goroutine.
func (l *NSQLookupd) Exit() {
	l.exitOnce.Do(func() {
		l.mu.Lock()
		l.exiting = true
		close(l.exitCh)
		l.mu.Unlock()

		l.tcpListener.Close()
		l.tcp.closeAll()
		l.http.Shutdown(l.opts.HTTPShutdownTimeout)
		l.wg.Wait()
	})
}
