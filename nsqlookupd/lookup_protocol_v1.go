package nsqlookupd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
	"github.com/ournsq/nsq/internal/version"
)

// Wire limits. NSQ bounded neither: a negative IDENTIFY length crashed the
// daemon and a huge one was allocated up front (L-TCP-07, Q-10), and a line
// without '\n' grew without end. Real IDENTIFY bodies are a few hundred
// bytes and the longest real command line is REGISTER with two 64-byte names.
const (
	maxIdentifyBodySize = 5 * 1024 * 1024
	maxLineLength       = 64 * 1024
)

var errLineTooLong = errors.New("line too long")

// clientV1 is one TCP peer. It is owned by its connection goroutine.
type clientV1 struct {
	conn net.Conn
	r    *bufio.Reader
	addr string    // remote ip:port, the peer id
	peer *PeerInfo // nil until IDENTIFY succeeds
}

func newClientV1(conn net.Conn) *clientV1 {
	return &clientV1{conn: conn, r: bufio.NewReader(conn), addr: conn.RemoteAddr().String()}
}

// String is the peer's address, as NSQ's log lines show it.
func (c *clientV1) String() string { return c.addr }

// cmdError is a V1 protocol error. Every V1 error is fatal (L-TCP-03): the
// text is sent as one frame and the connection is closed. cause, when set,
// is only logged.
type cmdError struct {
	code, desc string
	cause      error
}

func (e *cmdError) Error() string { return e.code + " " + e.desc }
func (e *cmdError) Unwrap() error { return e.cause }

func fatal(cause error, code, desc string) *cmdError {
	return &cmdError{code: code, desc: desc, cause: cause}
}

// ioLoop reads '\n'-terminated commands until the peer leaves, errs, times
// out or Exit closes the connection; then it removes the peer from every
// registration (L-TCP-10).
func (l *NSQLookupd) ioLoop(c *clientV1) {
	for {
		c.conn.SetReadDeadline(time.Now().Add(l.opts.ClientTimeout))
		line, err := readLine(c.r, maxLineLength)
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				e := fatal(nil, "E_INVALID", fmt.Sprintf("command longer than %d bytes", maxLineLength))
				l.logf(lg.ERROR, "[%s] - %s", c, e)
				sendResponse(c.conn, l.opts.ClientTimeout, []byte(e.Error()))
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				l.logf(lg.WARN, "[%s] - no command for %s, closing", c, l.opts.ClientTimeout)
			} else if err != io.EOF && !errors.Is(err, net.ErrClosed) {
				l.logf(lg.ERROR, "[%s] - read failed - %s", c, err)
			}
			break
		}

		// The whole line is trimmed, then split on single spaces (L-TCP-02).
		params := strings.Split(strings.TrimSpace(line), " ")
		resp, cerr := l.exec(c, params)
		if cerr != nil {
			ctx := ""
			if cerr.cause != nil {
				ctx = " - " + cerr.cause.Error()
			}
			l.logf(lg.ERROR, "[%s] - %s%s", c, cerr, ctx)
			if err := sendResponse(c.conn, l.opts.ClientTimeout, []byte(cerr.Error())); err != nil {
				l.logf(lg.ERROR, "[%s] - %s%s", c, err, ctx)
			}
			break
		}
		if err := sendResponse(c.conn, l.opts.ClientTimeout, resp); err != nil {
			l.logf(lg.ERROR, "[%s] - send failed - %s", c, err)
			break
		}
	}

	l.logf(lg.INFO, "PROTOCOL(V1): [%s] exiting ioloop", c)
	if c.peer != nil {
		for _, r := range l.db.RemovePeer(c.peer) {
			l.logf(lg.INFO, "DB: client(%s) UNREGISTER category:%s key:%s subkey:%s",
				c, r.Category, r.Key, r.SubKey)
		}
	}
}

// readLine returns the next line including its '\n', refusing lines longer
// than max instead of buffering them without limit.
func readLine(r *bufio.Reader, max int) (string, error) {
	frag, err := r.ReadSlice('\n')
	if err == nil {
		return string(frag), nil
	}
	var line []byte
	for errors.Is(err, bufio.ErrBufferFull) {
		line = append(line, frag...)
		if len(line) > max {
			return "", errLineTooLong
		}
		frag, err = r.ReadSlice('\n')
	}
	if err != nil {
		return "", err
	}
	line = append(line, frag...)
	if len(line) > max {
		return "", errLineTooLong
	}
	return string(line), nil
}

// exec runs one command; command names are case-sensitive.
func (l *NSQLookupd) exec(c *clientV1, params []string) ([]byte, *cmdError) {
	switch params[0] {
	case "PING":
		return l.ping(c)
	case "IDENTIFY":
		return l.identify(c)
	case "REGISTER":
		return l.register(c, params[1:])
	case "UNREGISTER":
		return l.unregister(c, params[1:])
	}
	return nil, fatal(nil, "E_INVALID", fmt.Sprintf("invalid command %s", params[0]))
}

var okResponse = []byte("OK")

// ping answers OK and, once identified, refreshes last_update (L-TCP-04).
func (l *NSQLookupd) ping(c *clientV1) ([]byte, *cmdError) {
	if c.peer != nil {
		now := time.Now()
		l.logf(lg.INFO, "CLIENT(%s): pinged (last ping %s)", c.peer.id, now.Sub(c.peer.LastUpdate()))
		c.peer.Touch(now)
	}
	return okResponse, nil
}

// identifyResponse is the IDENTIFY answer; keys alphabetical (L-TCP-06).
type identifyResponse struct {
	BroadcastAddress string `json:"broadcast_address"`
	Hostname         string `json:"hostname"`
	HTTPPort         int    `json:"http_port"`
	TCPPort          int    `json:"tcp_port"`
	Version          string `json:"version"`
}

// identify reads `[int32 len][JSON]` after the command line and registers
// the peer under the client category (L-TCP-05, L-TCP-07).
func (l *NSQLookupd) identify(c *clientV1) ([]byte, *cmdError) {
	if c.peer != nil {
		return nil, fatal(nil, "E_INVALID", "cannot IDENTIFY again")
	}
	n, err := protocol.ReadInt32(c.r)
	if err != nil {
		return nil, fatal(err, "E_BAD_BODY", "IDENTIFY failed to read body size")
	}
	// A zero length is not rejected here: like NSQ it reads an empty body and
	// fails JSON decoding.
	if n < 0 {
		return nil, fatal(nil, "E_BAD_BODY", fmt.Sprintf("IDENTIFY invalid body size %d", n))
	}
	if n > maxIdentifyBodySize {
		return nil, fatal(nil, "E_BAD_BODY", fmt.Sprintf("IDENTIFY body too big %d > %d", n, maxIdentifyBodySize))
	}
	// Grow the buffer as bytes arrive rather than trusting n up front.
	var body bytes.Buffer
	if _, err := io.CopyN(&body, c.r, int64(n)); err != nil {
		return nil, fatal(err, "E_BAD_BODY", "IDENTIFY failed to read body")
	}

	peer := NewPeerInfo(c.addr)
	if err := json.Unmarshal(body.Bytes(), peer); err != nil {
		return nil, fatal(err, "E_BAD_BODY", "IDENTIFY failed to decode JSON body")
	}
	peer.RemoteAddress = c.addr // never what the peer claims
	if peer.BroadcastAddress == "" || peer.TCPPort == 0 || peer.HTTPPort == 0 || peer.Version == "" {
		return nil, fatal(nil, "E_BAD_BODY", "IDENTIFY missing fields")
	}
	peer.Touch(time.Now())
	l.logf(lg.INFO, "CLIENT(%s): IDENTIFY Address:%s TCP:%d HTTP:%d Version:%s",
		c, peer.BroadcastAddress, peer.TCPPort, peer.HTTPPort, peer.Version)

	c.peer = peer
	if l.db.AddProducer(ClientRegistration, peer) {
		l.logf(lg.INFO, "DB: client(%s) REGISTER category:%s key:%s subkey:%s", c, CategoryClient, "", "")
	}

	resp, err := json.Marshal(identifyResponse{
		BroadcastAddress: l.opts.BroadcastAddress,
		Hostname:         l.hostname,
		HTTPPort:         l.RealHTTPAddr().Port,
		TCPPort:          l.RealTCPAddr().Port,
		Version:          version.Binary,
	})
	if err != nil {
		// Cannot happen for this struct; answer as NSQ would.
		l.logf(lg.ERROR, "[%s] - marshaling IDENTIFY response - %s", c, err)
		return nil, fatal(err, "E_INVALID", "failed to marshal response")
	}
	return resp, nil
}

// topicChannel validates REGISTER/UNREGISTER parameters (L-TCP-08). The
// name quoting here is single quotes, unlike nsqd's %q.
func topicChannel(command string, params []string) (string, string, *cmdError) {
	if len(params) == 0 {
		return "", "", fatal(nil, "E_INVALID", command+" insufficient number of params")
	}
	topic := params[0]
	channel := ""
	if len(params) >= 2 {
		channel = params[1]
	}
	if !protocol.IsValidTopicName(topic) {
		return "", "", fatal(nil, "E_BAD_TOPIC", fmt.Sprintf("%s topic name '%s' is not valid", command, topic))
	}
	if channel != "" && !protocol.IsValidChannelName(channel) {
		return "", "", fatal(nil, "E_BAD_CHANNEL", fmt.Sprintf("%s channel name '%s' is not valid", command, channel))
	}
	return topic, channel, nil
}

// register adds the peer to channel:T:C (if given) and topic:T: (L-TCP-08).
func (l *NSQLookupd) register(c *clientV1, params []string) ([]byte, *cmdError) {
	if c.peer == nil {
		return nil, fatal(nil, "E_INVALID", "client must IDENTIFY")
	}
	topic, channel, cerr := topicChannel("REGISTER", params)
	if cerr != nil {
		return nil, cerr
	}
	if channel != "" {
		if l.db.AddProducer(ChannelRegistration(topic, channel), c.peer) {
			l.logf(lg.INFO, "DB: client(%s) REGISTER category:%s key:%s subkey:%s", c, CategoryChannel, topic, channel)
		}
	}
	if l.db.AddProducer(TopicRegistration(topic), c.peer) {
		l.logf(lg.INFO, "DB: client(%s) REGISTER category:%s key:%s subkey:%s", c, CategoryTopic, topic, "")
	}
	return okResponse, nil
}

// unregister removes the peer from a channel, or from a topic and all its
// channels; ephemeral keys left without producers are deleted (L-TCP-09).
func (l *NSQLookupd) unregister(c *clientV1, params []string) ([]byte, *cmdError) {
	if c.peer == nil {
		return nil, fatal(nil, "E_INVALID", "client must IDENTIFY")
	}
	topic, channel, cerr := topicChannel("UNREGISTER", params)
	if cerr != nil {
		return nil, cerr
	}
	if channel != "" {
		removed, _ := l.db.RemoveProducer(ChannelRegistration(topic, channel), c.peer, protocol.IsEphemeral(channel))
		if removed {
			l.logf(lg.INFO, "DB: client(%s) UNREGISTER category:%s key:%s subkey:%s", c, CategoryChannel, topic, channel)
		}
		return okResponse, nil
	}

	// A topic UNREGISTER normally comes after the channels' own; anything
	// still registered here is unexpected, hence the warning.
	for _, ch := range l.db.ChannelNames(topic) {
		if removed, _ := l.db.RemoveProducer(ChannelRegistration(topic, ch), c.peer, false); removed {
			l.logf(lg.WARN, "client(%s) unexpected UNREGISTER category:%s key:%s subkey:%s", c, CategoryChannel, topic, ch)
		}
	}
	removed, _ := l.db.RemoveProducer(TopicRegistration(topic), c.peer, protocol.IsEphemeral(topic))
	if removed {
		l.logf(lg.INFO, "DB: client(%s) UNREGISTER category:%s key:%s subkey:%s", c, CategoryTopic, topic, "")
	}
	return okResponse, nil
}
