package nsqlookupd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// magicV1 opens every TCP session (L-TCP-01).
const magicV1 = "  V1"

// tcpServer accepts TCP connections and tracks them so Exit can close them.
type tcpServer struct {
	l  *NSQLookupd
	ln net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open connections, guarded by mu
	closed bool                  // set by closeAll; later conns are refused
}

func newTCPServer(l *NSQLookupd, ln net.Listener) *tcpServer {
	return &tcpServer{l: l, ln: ln, conns: make(map[net.Conn]struct{})}
}

// serve is the accept loop. It returns nil when the listener is closed by
// Exit and an error for any other permanent accept failure.
func (s *tcpServer) serve() error {
	s.l.logf(lg.INFO, "TCP: listening on %s", s.ln.Addr())
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// EMFILE and friends: back off instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.l.logf(lg.WARN, "temporary Accept() failure - %s", err)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("listener.Accept() error - %w", err)
		}
		backoff = 0
		if !s.track(conn) {
			conn.Close()
			continue
		}
		// The accept loop is itself counted in wg, so this Add can never
		// race with Exit's Wait on a zero counter.
		s.l.wg.Add(1)
		go func() {
			defer s.l.wg.Done()
			s.handle(conn)
			s.untrack(conn)
			conn.Close()
		}()
	}
	s.l.logf(lg.INFO, "TCP: closing %s", s.ln.Addr())
	return nil
}

func (s *tcpServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *tcpServer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// closeAll closes every open connection; their goroutines then see a read
// error, clean up their registrations and exit.
func (s *tcpServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// handle reads the protocol magic and runs the V1 protocol (L-TCP-01).
func (s *tcpServer) handle(conn net.Conn) {
	l := s.l
	addr := conn.RemoteAddr().String()
	l.logf(lg.INFO, "TCP: new client(%s)", addr)

	conn.SetReadDeadline(time.Now().Add(l.opts.ClientTimeout))
	var buf [4]byte
	if _, err := io.ReadFull(conn, buf[:]); err != nil {
		l.logf(lg.ERROR, "failed to read protocol version - %s", err)
		return
	}
	magic := string(buf[:])
	l.logf(lg.INFO, "CLIENT(%s): desired protocol magic '%s'", addr, magic)
	if magic != magicV1 {
		// The only answer without the frame-type-less V1 framing is still
		// length-prefixed: [int32 14]E_BAD_PROTOCOL.
		sendResponse(conn, l.opts.ClientTimeout, []byte("E_BAD_PROTOCOL"))
		l.logf(lg.ERROR, "client(%s) bad protocol magic '%s'", addr, magic)
		return
	}
	l.ioLoop(newClientV1(conn))
}

// sendResponse writes one V1 frame: [int32 BE len][data] (L-TCP-02), in a
// single write bounded by timeout so a peer that stops reading cannot hold
// the goroutine.
func sendResponse(conn net.Conn, timeout time.Duration, data []byte) error {
	buf := make([]byte, 4+len(data))
	binary.BigEndian.PutUint32(buf, uint32(len(data)))
	copy(buf[4:], data)
	conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := conn.Write(buf)
	return err
}
