package nsqd

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

// defaultProtocolMagicTimeout bounds how long a new connection may take to
// send its 4-byte protocol magic; NSQ waits forever, which lets idle sockets
// pin goroutines (policy: deadlines for the protocol magic).
const defaultProtocolMagicTimeout = 10 * time.Second

// tcpServer accepts connections and tracks them so Exit can close them all
// and wait for their goroutines.
type tcpServer struct {
	nsqd *NSQD

	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
	clients map[int64]*clientV2
	wg      sync.WaitGroup
}

func newTCPServer(n *NSQD) *tcpServer {
	return &tcpServer{
		nsqd:    n,
		conns:   make(map[net.Conn]struct{}),
		clients: make(map[int64]*clientV2),
	}
}

// serve runs the accept loop; it returns nil once the listener is closed.
func (s *tcpServer) serve(listener net.Listener) error {
	var tempDelay time.Duration
	for {
		conn, err := listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// e.g. EMFILE surfaced as temporary: back off, keep serving
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.nsqd.logf(lg.WARN, "temporary Accept() failure - %s", err)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		switch s.track(conn) {
		case trackClosing:
			conn.Close()
			continue
		case trackOverCap:
			s.refuse(conn)
			continue
		}
		go s.handle(conn)
	}
}

type trackResult int

const (
	tracked trackResult = iota
	trackClosing
	trackOverCap
)

// track registers conn unless the server is closing or --max-connections
// is reached.
func (s *tcpServer) track(conn net.Conn) trackResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return trackClosing
	}
	if max := s.nsqd.getOpts().MaxConnections; max > 0 && len(s.conns) >= max {
		return trackOverCap
	}
	s.conns[conn] = struct{}{}
	s.wg.Add(1)
	return tracked
}

// refuse answers a connection over --max-connections with one V2 error
// frame and closes it. Clients see an error they can log and retry on
// instead of a silent reset. The socket is fresh, so the small write lands
// in its empty send buffer at once; the deadline only guards oddities.
func (s *tcpServer) refuse(conn net.Conn) {
	max := s.nsqd.getOpts().MaxConnections
	s.nsqd.logf(lg.WARN, "TCP: refusing client(%s) - %d connections (--max-connections)", conn.RemoteAddr(), max)
	msg := fmt.Sprintf("E_TOO_MANY_CONNECTIONS max connections (%d) reached", max)
	frame := make([]byte, 8, 8+len(msg))
	binary.BigEndian.PutUint32(frame[0:4], uint32(4+len(msg)))
	binary.BigEndian.PutUint32(frame[4:8], uint32(frameTypeError))
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.Write(append(frame, msg...))
	conn.Close()
}

func (s *tcpServer) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *tcpServer) handle(conn net.Conn) {
	defer s.untrack(conn)
	defer conn.Close()
	n := s.nsqd
	n.logf(lg.INFO, "TCP: new client(%s)", conn.RemoteAddr())

	conn.SetReadDeadline(time.Now().Add(n.protocolMagicTimeout))
	var magic [4]byte
	if _, err := io.ReadFull(conn, magic[:]); err != nil {
		n.logf(lg.ERROR, "failed to read protocol version - %s", err)
		return
	}
	n.logf(lg.INFO, "CLIENT(%s): desired protocol magic '%s'", conn.RemoteAddr(), magic[:])

	if string(magic[:]) != "  V2" {
		// one error frame, then close (D-TCP-01)
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write([]byte{0, 0, 0, 18, 0, 0, 0, 1})
		conn.Write([]byte("E_BAD_PROTOCOL"))
		n.logf(lg.ERROR, "client(%s) bad protocol magic '%s'", conn.RemoteAddr(), magic[:])
		return
	}

	client := newClientV2(n.clientIDSequence.Add(1), conn, n)
	s.mu.Lock()
	s.clients[client.ID] = client
	s.mu.Unlock()

	prot := &protocolV2{nsqd: n}
	err := prot.ioLoop(client)
	if err != nil {
		n.logf(lg.ERROR, "client(%s) - %s", conn.RemoteAddr(), err)
	}

	s.mu.Lock()
	delete(s.clients, client.ID)
	s.mu.Unlock()
}

// closeAll closes every connection and waits for their goroutines.
func (s *tcpServer) closeAll() {
	s.mu.Lock()
	s.closing = true
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
