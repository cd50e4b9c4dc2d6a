package nsqlookupd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// L-TCP-01
func TestTCPBadMagic(t *testing.T) {
	l, logs := startLookupd(t, nil)
	for _, magic := range []string{"  V2", "GET ", "\x00\x00\x00\x00"} {
		c := dialRaw(t, l)
		c.write([]byte(magic))
		raw, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		// No frame type: just [int32 14]E_BAD_PROTOCOL, then close.
		if want := "\x00\x00\x00\x0eE_BAD_PROTOCOL"; string(raw) != want {
			t.Errorf("magic %q -> %q, want %q", magic, raw, want)
		}
	}
	if !logs.contains("bad protocol magic '  V2'") {
		t.Error("bad magic not logged")
	}
}

// L-TCP-02, L-TCP-03, L-TCP-05, L-TCP-07, L-TCP-08, L-TCP-09: every error
// string, each fatal.
func TestTCPErrors(t *testing.T) {
	l, _ := startLookupd(t, nil)
	ident := append([]byte("IDENTIFY\n"), lengthPrefixed(identifyBody(nil))...)
	be := func(n uint32) []byte { b := make([]byte, 4); binary.BigEndian.PutUint32(b, n); return b }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	cases := []struct {
		name      string
		send      []byte
		closeSend bool // half-close after sending (truncated input)
		want      []string
	}{
		{"unknown command", []byte("FOO\n"), false, []string{"E_INVALID invalid command FOO"}},
		{"lower-case command", []byte("ping\n"), false, []string{"E_INVALID invalid command ping"}},
		{"empty line", []byte("\n"), false, []string{"E_INVALID invalid command "}},
		{"register before identify", []byte("REGISTER t\n"), false, []string{"E_INVALID client must IDENTIFY"}},
		{"unregister before identify", []byte("UNREGISTER t c\n"), false, []string{"E_INVALID client must IDENTIFY"}},
		{"identify again", cat(ident, ident), false, []string{"", "E_INVALID cannot IDENTIFY again"}},
		{"identify truncated size", []byte("IDENTIFY\n\x00\x00"), true, []string{"E_BAD_BODY IDENTIFY failed to read body size"}},
		{"identify truncated body", cat([]byte("IDENTIFY\n"), be(10), []byte("{}")), true, []string{"E_BAD_BODY IDENTIFY failed to read body"}},
		{"identify bad json", cat([]byte("IDENTIFY\n"), lengthPrefixed([]byte("{nope"))), false, []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}},
		{"identify wrong json type", cat([]byte("IDENTIFY\n"), lengthPrefixed([]byte(`{"tcp_port":"x"}`))), false, []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}},
		// Zero length is NSQ's behaviour: an empty body that fails to decode.
		{"identify zero length", cat([]byte("IDENTIFY\n"), be(0)), false, []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}},
		{"identify negative length", cat([]byte("IDENTIFY\n"), be(0xffffffff)), false, []string{"E_BAD_BODY IDENTIFY invalid body size -1"}},
		{"identify min int32 length", cat([]byte("IDENTIFY\n"), be(0x80000000)), false, []string{"E_BAD_BODY IDENTIFY invalid body size -2147483648"}},
		{"identify huge length", cat([]byte("IDENTIFY\n"), be(0x7fffffff)), false, []string{"E_BAD_BODY IDENTIFY body too big 2147483647 > 5242880"}},
		{"identify just too big", cat([]byte("IDENTIFY\n"), be(5242881)), false, []string{"E_BAD_BODY IDENTIFY body too big 5242881 > 5242880"}},
		{"missing broadcast_address", cat([]byte("IDENTIFY\n"), lengthPrefixed(identifyBody(map[string]interface{}{"broadcast_address": nil}))), false, []string{"E_BAD_BODY IDENTIFY missing fields"}},
		{"missing tcp_port", cat([]byte("IDENTIFY\n"), lengthPrefixed(identifyBody(map[string]interface{}{"tcp_port": 0}))), false, []string{"E_BAD_BODY IDENTIFY missing fields"}},
		{"missing http_port", cat([]byte("IDENTIFY\n"), lengthPrefixed(identifyBody(map[string]interface{}{"http_port": nil}))), false, []string{"E_BAD_BODY IDENTIFY missing fields"}},
		{"missing version", cat([]byte("IDENTIFY\n"), lengthPrefixed(identifyBody(map[string]interface{}{"version": ""}))), false, []string{"E_BAD_BODY IDENTIFY missing fields"}},
		{"json null", cat([]byte("IDENTIFY\n"), lengthPrefixed([]byte("null"))), false, []string{"E_BAD_BODY IDENTIFY missing fields"}},
		{"register no params", cat(ident, []byte("REGISTER\n")), false, []string{"", "E_INVALID REGISTER insufficient number of params"}},
		{"register bad topic", cat(ident, []byte("REGISTER b@d\n")), false, []string{"", "E_BAD_TOPIC REGISTER topic name 'b@d' is not valid"}},
		{"register empty topic", cat(ident, []byte("REGISTER  c\n")), false, []string{"", "E_BAD_TOPIC REGISTER topic name '' is not valid"}},
		{"register long topic", cat(ident, []byte("REGISTER "+strings.Repeat("t", 65)+"\n")), false, []string{"", "E_BAD_TOPIC REGISTER topic name '" + strings.Repeat("t", 65) + "' is not valid"}},
		{"register bad channel", cat(ident, []byte("REGISTER t b@d\n")), false, []string{"", "E_BAD_CHANNEL REGISTER channel name 'b@d' is not valid"}},
		{"unregister no params", cat(ident, []byte("UNREGISTER\n")), false, []string{"", "E_INVALID UNREGISTER insufficient number of params"}},
		{"unregister bad topic", cat(ident, []byte("UNREGISTER t!\n")), false, []string{"", "E_BAD_TOPIC UNREGISTER topic name 't!' is not valid"}},
		{"unregister bad channel", cat(ident, []byte("UNREGISTER t c!\n")), false, []string{"", "E_BAD_CHANNEL UNREGISTER channel name 'c!' is not valid"}},
		// 17 full 4 KiB reader buffers: the server consumes all of it
		// before refusing, so the close is a clean FIN.
		{"line too long", cat([]byte("PING "), bytes.Repeat([]byte("x"), 17*4096-5)), false, []string{fmt.Sprintf("E_INVALID command longer than %d bytes", maxLineLength)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialV1(t, l)
			c.write(tc.send)
			if tc.closeSend {
				c.Conn.(*net.TCPConn).CloseWrite()
			}
			for i, want := range tc.want {
				got, err := c.readFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if want == "" { // the IDENTIFY response: any JSON
					if !strings.HasPrefix(got, "{") {
						t.Fatalf("frame %d = %q, want IDENTIFY JSON", i, got)
					}
					continue
				}
				if got != want {
					t.Fatalf("frame %d = %q, want %q", i, got, want)
				}
			}
			c.expectClosed()
		})
	}

	// L-TCP-07: none of that took the daemon down.
	c := dialV1(t, l)
	c.cmd("PING")
	c.expect("OK")
	if r := doHTTP(t, l, "GET", "/ping", ""); r.code != 200 {
		t.Fatalf("/ping -> %d", r.code)
	}
}

// L-TCP-02, L-TCP-04, L-TCP-05, L-TCP-06, L-TCP-08: the success path.
func TestTCPSuccessResponses(t *testing.T) {
	l, logs := startLookupd(t, nil)
	c := dialV1(t, l)

	// PING before IDENTIFY; whitespace trimmed; extra params ignored.
	c.cmd("PING")
	c.expect("OK")
	c.cmd("  PING  \t")
	c.expect("OK")
	c.cmd("PING extra params")
	c.expect("OK")
	c.write([]byte("PING\r\n"))
	c.expect("OK")

	hostname, _ := os.Hostname()
	want := fmt.Sprintf(`{"broadcast_address":"lookupd.test","hostname":%q,"http_port":%d,"tcp_port":%d,"version":"1.3.0"}`,
		hostname, l.RealHTTPAddr().Port, l.RealTCPAddr().Port)
	// remote_address in the body is ignored; unknown keys are ignored.
	body := identifyBody(map[string]interface{}{"remote_address": "1.2.3.4:5", "bogus": true})
	if got := c.identify(body); got != want {
		t.Fatalf("IDENTIFY response\n got %s\nwant %s", got, want)
	}
	ps := l.DB().Producers(ClientRegistration)
	if len(ps) != 1 || ps[0].Peer.RemoteAddress != c.LocalAddr().String() || ps[0].Peer.ID() != c.LocalAddr().String() {
		t.Fatalf("client registration = %+v, want peer %s", ps, c.LocalAddr())
	}
	peer := ps[0].Peer

	c.cmd("REGISTER t1 c1")
	c.expect("OK")
	c.cmd("REGISTER t1 c1") // idempotent
	c.expect("OK")
	c.cmd("REGISTER t2")
	c.expect("OK")
	if got := l.DB().TopicNames(); fmt.Sprint(got) != "[t1 t2]" {
		t.Fatalf("topics %v", got)
	}
	if got := l.DB().ChannelNames("t1"); fmt.Sprint(got) != "[c1]" {
		t.Fatalf("channels %v", got)
	}
	if n := len(l.DB().Producers(ChannelRegistration("t1", "c1"))); n != 1 {
		t.Fatalf("channel producers %d", n)
	}

	// PING after IDENTIFY refreshes last_update.
	before := peer.LastUpdate()
	time.Sleep(5 * time.Millisecond)
	c.cmd("PING")
	c.expect("OK")
	if !peer.LastUpdate().After(before) {
		t.Fatal("PING did not refresh last_update")
	}
	for _, line := range []string{
		"CLIENT(" + c.LocalAddr().String() + "): IDENTIFY Address:nsqd.test TCP:4150 HTTP:4151 Version:1.3.0",
		"DB: client(" + c.LocalAddr().String() + ") REGISTER category:channel key:t1 subkey:c1",
		"DB: client(" + c.LocalAddr().String() + ") REGISTER category:topic key:t1 subkey:",
		"CLIENT(" + c.LocalAddr().String() + "): pinged (last ping",
	} {
		if !logs.contains(line) {
			t.Errorf("missing log %q", line)
		}
	}
}

// L-TCP-09
func TestTCPUnregister(t *testing.T) {
	l, logs := startLookupd(t, nil)
	other := nsqdPeer(t, l, map[string]interface{}{"broadcast_address": "other"})
	c := nsqdPeer(t, l, nil)
	db := l.DB()
	for _, cmd := range []string{
		"REGISTER t c", "REGISTER t c#ephemeral", "REGISTER t c2",
		"REGISTER e#ephemeral", "REGISTER e#ephemeral ch",
		"REGISTER shared#ephemeral",
	} {
		c.cmd(cmd)
		c.expect("OK")
	}
	other.cmd("REGISTER shared#ephemeral")
	other.expect("OK")

	// Channel UNREGISTER: non-ephemeral key stays (empty), ephemeral goes.
	c.cmd("UNREGISTER t c")
	c.expect("OK")
	c.cmd("UNREGISTER t c#ephemeral")
	c.expect("OK")
	if !db.HasRegistration(ChannelRegistration("t", "c")) || len(db.Producers(ChannelRegistration("t", "c"))) != 0 {
		t.Fatal("non-ephemeral channel key should stay, empty")
	}
	if db.HasRegistration(ChannelRegistration("t", "c#ephemeral")) {
		t.Fatal("ephemeral channel key should be deleted")
	}

	// Topic UNREGISTER also drops the peer from the topic's channels.
	c.cmd("UNREGISTER t")
	c.expect("OK")
	if len(db.Producers(ChannelRegistration("t", "c2"))) != 0 || len(db.Producers(TopicRegistration("t"))) != 0 {
		t.Fatal("topic UNREGISTER left the peer registered")
	}
	if !db.HasRegistration(TopicRegistration("t")) || !db.HasRegistration(ChannelRegistration("t", "c2")) {
		t.Fatal("non-ephemeral keys should stay")
	}
	if !logs.contains("unexpected UNREGISTER category:channel key:t subkey:c2") {
		t.Error("no warning for channel removed by topic UNREGISTER")
	}

	// Ephemeral topic: key deleted once empty; its channel keys stay.
	c.cmd("UNREGISTER e#ephemeral")
	c.expect("OK")
	if db.HasRegistration(TopicRegistration("e#ephemeral")) {
		t.Fatal("ephemeral topic key should be deleted")
	}
	if !db.HasRegistration(ChannelRegistration("e#ephemeral", "ch")) {
		t.Fatal("channel key of an ephemeral topic is kept by NSQ")
	}

	// Ephemeral topic with another producer left: key stays.
	c.cmd("UNREGISTER shared#ephemeral")
	c.expect("OK")
	if ps := db.Producers(TopicRegistration("shared#ephemeral")); len(ps) != 1 || ps[0].Peer.BroadcastAddress != "other" {
		t.Fatalf("shared ephemeral topic producers = %+v", ps)
	}

	// Unknown topic and channel: still OK.
	c.cmd("UNREGISTER nope")
	c.expect("OK")
	c.cmd("UNREGISTER nope ch")
	c.expect("OK")
	if db.HasRegistration(TopicRegistration("nope")) || db.HasRegistration(ChannelRegistration("nope", "ch")) {
		t.Fatal("UNREGISTER created keys")
	}
}

// L-TCP-10, L-DB-03: a disconnect removes the peer everywhere but keeps the
// keys, ephemeral ones included.
func TestTCPDisconnectCleanup(t *testing.T) {
	l, logs := startLookupd(t, nil)
	stay := nsqdPeer(t, l, map[string]interface{}{"broadcast_address": "stay"})
	stay.cmd("REGISTER t1")
	stay.expect("OK")

	c := nsqdPeer(t, l, nil)
	for _, cmd := range []string{"REGISTER t1 c1", "REGISTER ee#ephemeral", "REGISTER t2 c#ephemeral"} {
		c.cmd(cmd)
		c.expect("OK")
	}
	addr := c.LocalAddr().String()
	c.Close()

	db := l.DB()
	eventually(t, "disconnect cleanup", func() bool { return len(db.Producers(ClientRegistration)) == 1 })
	for _, k := range []Registration{
		TopicRegistration("t1"), ChannelRegistration("t1", "c1"), TopicRegistration("ee#ephemeral"),
		TopicRegistration("t2"), ChannelRegistration("t2", "c#ephemeral"),
	} {
		if !db.HasRegistration(k) {
			t.Errorf("key %s vanished", k)
		}
		for _, p := range db.Producers(k) {
			if p.Peer.ID() == addr {
				t.Errorf("peer still in %s", k)
			}
		}
	}
	if ps := db.Producers(TopicRegistration("t1")); len(ps) != 1 || ps[0].Peer.BroadcastAddress != "stay" {
		t.Fatalf("other peer lost: %+v", ps)
	}
	if got := getBody(t, l, "/topics"); got != `{"topics":["ee#ephemeral","t1","t2"]}` {
		t.Fatalf("/topics = %s", got)
	}
	if got := getBody(t, l, "/lookup?topic=ee%23ephemeral"); got != `{"channels":[],"producers":[]}` {
		t.Fatalf("/lookup = %s", got)
	}
	if !logs.contains("DB: client(" + addr + ") UNREGISTER category:topic key:ee#ephemeral subkey:") {
		t.Error("cleanup not logged")
	}
}

// ClientTimeout: a silent peer is dropped and its registrations go with it.
func TestTCPClientTimeout(t *testing.T) {
	l, logs := startLookupd(t, func(o *Options) { o.ClientTimeout = 500 * time.Millisecond })

	// Never sends the magic.
	raw := dialRaw(t, l)
	start := time.Now()
	raw.expectClosed()
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("closed after %s", el)
	}

	// Stays active while it PINGs more often than the timeout.
	c := nsqdPeer(t, l, nil)
	c.cmd("REGISTER t")
	c.expect("OK")
	for i := 0; i < 4; i++ {
		time.Sleep(100 * time.Millisecond)
		c.cmd("PING")
		c.expect("OK")
	}
	// Then goes silent.
	c.expectClosed()
	eventually(t, "registrations removed", func() bool {
		return len(l.DB().Producers(TopicRegistration("t"))) == 0 && len(l.DB().Producers(ClientRegistration)) == 0
	})
	if !logs.contains("no command for 500ms, closing") {
		t.Error("timeout not logged")
	}
}

// Exit closes live connections promptly (a raw TCP peer, an identified
// peer, and a peer that sent half a command).
func TestExitClosesConnections(t *testing.T) {
	l, logs := startLookupd(t, nil)
	idle := dialRaw(t, l)
	peer := nsqdPeer(t, l, nil)
	half := dialV1(t, l)
	half.write([]byte("IDENTIFY\n\x00\x00\x00\x10{"))
	for _, c := range []*v1conn{idle, half} {
		addr := c.LocalAddr().String()
		eventually(t, "accept of "+addr, func() bool { return logs.contains("TCP: new client(" + addr + ")") })
	}

	done := make(chan struct{})
	go func() { l.Exit(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Exit hung")
	}
	idle.expectClosed()
	peer.expectClosed()
	// half's bytes may still be unread when it is closed: a reset is fine.
	var b [1]byte
	if _, err := half.Read(b[:]); err == nil {
		t.Fatal("half-sent connection still open")
	}
	if n := len(l.DB().Producers(ClientRegistration)); n != 0 {
		t.Fatalf("%d peers still registered after Exit", n)
	}
	if _, err := net.DialTimeout("tcp", l.RealTCPAddr().String(), time.Second); err == nil {
		t.Fatal("TCP listener still open")
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 10000)
	in := "short\n" + long + "\n" + strings.Repeat("y", 70000) + "\n"
	r := newClientV1(fakeConn{strings.NewReader(in)}).r
	if got, err := readLine(r, maxLineLength); err != nil || got != "short\n" {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := readLine(r, maxLineLength); err != nil || got != long+"\n" {
		t.Fatalf("len %d %v", len(got), err)
	}
	if _, err := readLine(r, maxLineLength); err != errLineTooLong {
		t.Fatalf("err %v", err)
	}
}

// fakeConn is enough of a net.Conn for newClientV1.
type fakeConn struct{ io.Reader }

func (fakeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }
func (f fakeConn) Read(b []byte) (int, error)     { return f.Reader.Read(b) }
