package nsqd

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"testing"
	"time"
)

// fzRefLookupFrames splits an nsqlookupd answer stream into its first k
// [int32 size][data] frames, as far as they are complete and within
// maxSize.
func fzRefLookupFrames(b []byte, k int, maxSize int64) [][]byte {
	var frames [][]byte
	for len(frames) < k {
		if len(b) < 4 {
			break
		}
		size := int32(binary.BigEndian.Uint32(b))
		if size < 0 || int64(size) > maxSize || int64(len(b)-4) < int64(size) {
			break
		}
		frames = append(frames, b[4:4+size])
		b = b[4+size:]
	}
	return frames
}

// FuzzLookupPeer: nsqd's side of the lookupd connection (lookup_peer.go
// roundTrip, and lookupdConnected's IDENTIFY answer parsing) reading an
// arbitrary answer stream. It must not panic, must bound every announced
// size by --max-body-size before allocating, and must succeed exactly when
// the stream holds an IDENTIFY answer that is a JSON peer description
// followed by an answer to each REGISTER.
func FuzzLookupPeer(f *testing.F) {
	n := fzStartNSQD(f, nil)
	n.GetTopic("fzlookup").GetChannel("c") // one REGISTER after IDENTIFY
	maxSize := n.getOpts().MaxBodySize
	f.Fuzz(func(t *testing.T, resp []byte) {
		p := newLookupPeer("fuzz", maxSize, n.logf, nil)
		p.conn = &fzScriptConn{r: bytes.NewReader(resp)}
		err := n.lookupdConnected(p)

		want := fzRefLookupFrames(resp, 1+len(n.registrations()), maxSize)
		ok := len(want) == 1+len(n.registrations())
		var info peerInfo
		if ok {
			ok = string(want[0]) != "E_INVALID" && json.Unmarshal(want[0], &info) == nil
		}
		switch {
		case ok && err != nil:
			t.Fatalf("valid answer stream refused: %v", err)
		case !ok && err == nil:
			t.Fatalf("invalid answer stream %q accepted", resp)
		case ok:
			p.infoMu.RLock()
			got := p.info
			p.infoMu.RUnlock()
			if got != info {
				t.Fatalf("peer info %+v, want %+v", got, info)
			}
		}
		p.Close()
	})
}

// fzScriptConn is a connection whose peer answers with a fixed byte stream
// (then EOF) and swallows whatever it is sent.
type fzScriptConn struct {
	r *bytes.Reader
}

func (c *fzScriptConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *fzScriptConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *fzScriptConn) Close() error                     { return nil }
func (c *fzScriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fzScriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fzScriptConn) SetDeadline(time.Time) error      { return nil }
func (c *fzScriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fzScriptConn) SetWriteDeadline(time.Time) error { return nil }

func fzLookupPeerSeeds() []fzSeed {
	frame := func(data string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(data))), data...)
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	id := `{"tcp_port":4160,"http_port":4161,"version":"1.3.0","broadcast_address":"lookupd","hostname":"h"}`
	s := func(name string, b []byte) fzSeed { return fzSeed{name, []interface{}{b}} }
	return []fzSeed{
		s("ok", cat(frame(id), frame("OK"))),
		s("register-error", cat(frame(id), frame("E_INVALID client must IDENTIFY"))),
		s("e-invalid", cat(frame("E_INVALID"), frame("OK"))),
		s("not-json", cat(frame("hello"), frame("OK"))),
		s("empty-frame", cat(frame(""), frame("OK"))),
		s("missing-register-answer", frame(id)),
		s("truncated", frame(id)[:10]),
		s("negative-size", []byte{0xff, 0xff, 0xff, 0xff}),
		s("huge-size", []byte{0x7f, 0xff, 0xff, 0xff, 'x'}),
		s("over-max-body", binary.BigEndian.AppendUint32(nil, fzMaxBodySize+1)),
		s("empty", nil),
	}
}
