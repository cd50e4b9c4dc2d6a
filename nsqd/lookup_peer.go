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

// lookupPeerTimeout bounds the dial and every read and write (D-LKP-01).
const lookupPeerTimeout = time.Second

// peerInfo is what an nsqlookupd says about itself in its IDENTIFY answer.
type peerInfo struct {
	TCPPort          int    `json:"tcp_port"`
	HTTPPort         int    `json:"http_port"`
	Version          string `json:"version"`
	BroadcastAddress string `json:"broadcast_address"`
}

// lookupPeer is one nsqlookupd connection. It is driven only by the lookup
// loop goroutine; info is also read by topic creation (channel
// pre-creation), hence its mutex.
type lookupPeer struct {
	addr            string
	maxBodySize     int64
	conn            net.Conn
	connectCallback func(*lookupPeer) error
	logf            func(lg.LogLevel, string, ...interface{})

	infoMu sync.RWMutex
	info   peerInfo
}

func newLookupPeer(addr string, maxBodySize int64, logf func(lg.LogLevel, string, ...interface{}),
	connectCallback func(*lookupPeer) error) *lookupPeer {
	return &lookupPeer{addr: addr, maxBodySize: maxBodySize, logf: logf, connectCallback: connectCallback}
}

func (p *lookupPeer) String() string { return p.addr }

// httpAddr is where this lookupd's HTTP API is, once it identified
// (D-LKP-09); "" before that or when it has no broadcast address.
func (p *lookupPeer) httpAddr() string {
	p.infoMu.RLock()
	defer p.infoMu.RUnlock()
	if p.info.BroadcastAddress == "" || p.info.HTTPPort == 0 {
		return ""
	}
	return net.JoinHostPort(p.info.BroadcastAddress, fmt.Sprint(p.info.HTTPPort))
}

func (p *lookupPeer) setInfo(info peerInfo) {
	p.infoMu.Lock()
	p.info = info
	p.infoMu.Unlock()
}

// connect dials (resolving the host name again each time), sends the
// protocol magic and runs the connect callback (IDENTIFY + REGISTER all).
func (p *lookupPeer) connect() error {
	p.logf(lg.INFO, "LOOKUP connecting to %s", p.addr)
	conn, err := net.DialTimeout("tcp", p.addr, lookupPeerTimeout)
	if err != nil {
		return err
	}
	p.conn = conn
	conn.SetWriteDeadline(time.Now().Add(lookupPeerTimeout))
	if _, err := conn.Write([]byte("  V1")); err != nil {
		p.Close()
		return err
	}
	if p.connectCallback != nil {
		if err := p.connectCallback(p); err != nil {
			p.Close()
			return err
		}
	}
	return nil
}

// Command sends one command (connecting first if needed) and returns the
// response payload. cmd nil only connects. Any I/O error closes the
// connection; the next command reconnects and re-registers (D-LKP-07).
func (p *lookupPeer) Command(cmd []byte) ([]byte, error) {
	if p.conn == nil {
		if err := p.connect(); err != nil {
			return nil, err
		}
	}
	if cmd == nil {
		return nil, nil
	}
	return p.roundTrip(cmd)
}

// roundTrip writes cmd on the open connection and reads [int32 len][data].
func (p *lookupPeer) roundTrip(cmd []byte) ([]byte, error) {
	p.conn.SetWriteDeadline(time.Now().Add(lookupPeerTimeout))
	if _, err := p.conn.Write(cmd); err != nil {
		p.Close()
		return nil, err
	}
	p.conn.SetReadDeadline(time.Now().Add(lookupPeerTimeout))
	var lenBuf [4]byte
	if _, err := io.ReadFull(p.conn, lenBuf[:]); err != nil {
		p.Close()
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(lenBuf[:]))
	if size < 0 || int64(size) > p.maxBodySize {
		p.Close()
		return nil, fmt.Errorf("response size %d out of range 0-%d", size, p.maxBodySize)
	}
	resp := make([]byte, size)
	if _, err := io.ReadFull(p.conn, resp); err != nil {
		p.Close()
		return nil, err
	}
	return resp, nil
}

// Close drops the connection (a later Command reconnects).
func (p *lookupPeer) Close() error {
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close()
	p.conn = nil
	return err
}

// lookupd V1 command encoding.
func cmdRegister(topic, channel string) []byte {
	if channel == "" {
		return []byte("REGISTER " + topic + "\n")
	}
	return []byte("REGISTER " + topic + " " + channel + "\n")
}

func cmdUnregister(topic, channel string) []byte {
	if channel == "" {
		return []byte("UNREGISTER " + topic + "\n")
	}
	return []byte("UNREGISTER " + topic + " " + channel + "\n")
}

var cmdPing = []byte("PING\n")

func cmdIdentify(body []byte) []byte {
	b := make([]byte, 0, len("IDENTIFY\n")+4+len(body))
	b = append(b, "IDENTIFY\n"...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// isLookupError reports whether a response is an error text ("E_...").
func isLookupError(resp []byte) bool {
	return len(resp) >= 2 && resp[0] == 'E' && resp[1] == '_'
}

var errLookupResponse = errors.New("error response")
