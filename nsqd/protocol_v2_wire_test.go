package nsqd_test

// Wire-level conformance of nsqd's TCP protocol V2, checked with raw frames
// against /work/shared/spec/nsq-spec.md section 2 (D-TCP-*, D-ERR-*) and the
// externally visible parts of section 4 (D-NAME, D-INFL, D-DEF, D-REQ,
// D-TOPIC, D-PAUSE, D-EPH). Test and subtest names carry the spec IDs; the
// coverage table is in docs/conformance-nsqd-tcp.md.
//
// Out of scope here: TLS, snappy, deflate, AUTH with a configured auth
// server, HTTP, nsqlookupd, statsd, sample_rate behaviour (D-TCP-52) and the
// topology experiment.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ournsq/nsq/nsqd"
)

// fakeID is a well-formed message ID that is never in flight.
const fakeID = "0123456789abcdef"

func getChannel(t testing.TB, n *nsqd.NSQD, topic, channel string) *nsqd.Channel {
	t.Helper()
	tp, err := n.GetExistingTopic(topic)
	if err != nil {
		t.Fatalf("topic %q should exist: %v", topic, err)
	}
	ch, err := tp.GetExistingChannel(channel)
	if err != nil {
		t.Fatalf("channel %q/%q should exist: %v", topic, channel, err)
	}
	return ch
}

// ---------------------------------------------------------------------------
// D-TCP-01, D-ERR-01: protocol magic

func TestWireMagic_DTCP01(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)

	badProtocol := wantFrame(frameTypeError, "E_BAD_PROTOCOL")
	if len(badProtocol) != 22 || badProtocol[3] != 18 {
		t.Fatalf("test bug: E_BAD_PROTOCOL frame % x", badProtocol)
	}
	cases := []struct {
		name  string
		send  string
		half  bool   // half-close after sending
		reply []byte // exact bytes before EOF
	}{
		{"D-ERR-01 bad magic V3", "  V3", false, badProtocol},
		{"D-ERR-01 lookupd magic V1 rejected", "  V1", false, badProtocol},
		{"D-ERR-01 garbage magic followed by a command", "XXXXNOP\n", false, badProtocol},
		{"D-ERR-01 lowercase v2", "  v2", false, badProtocol},
		{"D-TCP-01 fewer than 4 bytes then EOF closes silently", "  V", true, nil},
		{"D-TCP-01 nothing then EOF closes silently", "", true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, addr)
			if tc.send != "" {
				c.write([]byte(tc.send))
			}
			if tc.half {
				c.closeWrite()
			}
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			var got []byte
			buf := make([]byte, 256)
			for {
				k, err := c.r.Read(buf)
				got = append(got, buf[:k]...)
				if err != nil {
					if !isClosedErr(err) {
						t.Fatalf("want the server to close the connection, got %v after % x", err, got)
					}
					break
				}
			}
			if !bytes.Equal(got, tc.reply) {
				t.Fatalf("want exactly % x then EOF, got % x", tc.reply, got)
			}
		})
	}
}

// Policy (README "Deadlines for the protocol magic"): a client that sends
// fewer than 4 bytes and then nothing must be disconnected. We only bound
// the wait at 15 s; a longer deadline is a finding, not a reason to wait more.
func TestWireMagicDeadline_DTCP01(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, func(o *nsqd.Options) { o.ProtocolMagicTimeout = 500 * time.Millisecond })
	c := dialRaw(t, addr)
	c.write([]byte("  "))
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	b := make([]byte, 64)
	k, err := c.r.Read(b)
	if err == nil {
		t.Fatalf("want silent close, got bytes % x", b[:k])
	}
	if !isClosedErr(err) {
		t.Fatalf("stalled magic: connection not closed by the server within 15s (%v)", err)
	}
	t.Logf("stalled magic closed after %v", time.Since(start).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------
// D-ERR-*: the catalogue, exact bytes, fatal vs non-fatal (D-TCP-05)

func TestWireErrorCatalogue_DERR(t *testing.T) {
	t.Parallel()
	// Small limits so the "too big" paths are cheap; the rest is default:
	// max-rdy-count 2500, max-req-timeout 1h, heartbeat/buffer/msg bounds.
	_, addr := startNSQD(t, func(o *nsqd.Options) {
		o.MaxMsgSize = 100
		o.MaxBodySize = 1000
	})

	const (
		init_   = ""
		sub     = "sub"     // SUB t c → OK
		closing = "closing" // SUB, CLS → CLOSE_WAIT
		nohb    = "nohb"    // IDENTIFY heartbeat_interval -1 → OK
	)
	type errCase struct {
		name  string // spec ID first
		pre   string
		send  []byte
		half  bool // half-close after send (server sees EOF mid-command)
		want  string
		fatal bool
	}
	F, N := true, false
	s := func(x string) []byte { return []byte(x) }
	hdr := func(l string, n ...int) []byte {
		b := line(l)
		for _, v := range n {
			b = append(b, be32(v)...)
		}
		return b
	}
	long65 := strings.Repeat("a", 65)

	cases := []errCase{
		// D-ERR-02 / D-TCP-02
		{"D-ERR-02 unknown command", init_, s("FOO\n"), false, "E_INVALID invalid command FOO", F},
		{"D-ERR-02 D-TCP-02 commands are case-sensitive", init_, s("nop\n"), false, "E_INVALID invalid command nop", F},
		{"D-ERR-02 unknown command in subscribed state", sub, s("BAR x y\n"), false, "E_INVALID invalid command BAR", F},
		{"D-TCP-02 double space gives an empty topic param", init_, pubCmd(" t", s("x")), false, `E_BAD_TOPIC PUB topic name "" is not valid`, F},

		// IDENTIFY D-ERR-04..09
		{"D-ERR-04 IDENTIFY after SUB", sub, identifyCmd("{}"), false, "E_INVALID cannot IDENTIFY in current state", F},
		{"D-ERR-04 IDENTIFY after CLS", closing, identifyCmd("{}"), false, "E_INVALID cannot IDENTIFY in current state", F},
		{"D-ERR-05 IDENTIFY truncated size", init_, s("IDENTIFY\n\x00\x00"), true, "E_BAD_BODY IDENTIFY failed to read body size", F},
		{"D-ERR-06 IDENTIFY body too big", init_, hdr("IDENTIFY", 1001), false, "E_BAD_BODY IDENTIFY body too big 1001 > 1000", F},
		{"D-ERR-07 IDENTIFY size 0", init_, hdr("IDENTIFY", 0), false, "E_BAD_BODY IDENTIFY invalid body size 0", F},
		{"D-ERR-07 IDENTIFY size -1", init_, hdr("IDENTIFY", -1), false, "E_BAD_BODY IDENTIFY invalid body size -1", F},
		{"D-ERR-08 IDENTIFY truncated body", init_, cat(hdr("IDENTIFY", 10), s("{}")), true, "E_BAD_BODY IDENTIFY failed to read body", F},
		{"D-ERR-09 IDENTIFY invalid JSON", init_, identifyCmd("{"), false, "E_BAD_BODY IDENTIFY failed to decode JSON body", F},
		{"D-ERR-09 IDENTIFY JSON array", init_, identifyCmd("[]"), false, "E_BAD_BODY IDENTIFY failed to decode JSON body", F},
		{"D-ERR-09 IDENTIFY wrong type for known field", init_, identifyCmd(`{"heartbeat_interval":"1000"}`), false, "E_BAD_BODY IDENTIFY failed to decode JSON body", F},

		// AUTH without an auth server: D-ERR-17..19, D-ERR-21
		{"D-ERR-17 AUTH after SUB", sub, cat(line("AUTH"), withBody(s("secret"))), false, "E_INVALID cannot AUTH in current state", F},
		{"D-ERR-17 AUTH after CLS", closing, cat(line("AUTH"), withBody(s("secret"))), false, "E_INVALID cannot AUTH in current state", F},
		{"D-ERR-18 AUTH with a param", init_, cat(line("AUTH x"), withBody(s("secret"))), false, "E_INVALID AUTH invalid number of parameters", F},
		{"D-ERR-19 AUTH truncated size", init_, s("AUTH\n\x00"), true, "E_BAD_BODY AUTH failed to read body size", F},
		{"D-ERR-19 AUTH body too big", init_, hdr("AUTH", 1001), false, "E_BAD_BODY AUTH body too big 1001 > 1000", F},
		{"D-ERR-19 AUTH size 0", init_, hdr("AUTH", 0), false, "E_BAD_BODY AUTH invalid body size 0", F},
		{"D-ERR-19 AUTH truncated body", init_, cat(hdr("AUTH", 10), s("abc")), true, "E_BAD_BODY AUTH failed to read body", F},
		{"D-ERR-21 AUTH not configured", init_, cat(line("AUTH"), withBody(s("secret"))), false, "E_AUTH_DISABLED AUTH disabled", F},

		// SUB D-ERR-27..31
		{"D-ERR-27 SUB twice", sub, s("SUB t c2\n"), false, "E_INVALID cannot SUB in current state", F},
		{"D-ERR-27 SUB after CLS", closing, s("SUB t c2\n"), false, "E_INVALID cannot SUB in current state", F},
		{"D-ERR-28 SUB with heartbeats disabled", nohb, s("SUB t c\n"), false, "E_INVALID cannot SUB with heartbeats disabled", F},
		{"D-ERR-28 heartbeat check precedes param check", nohb, s("SUB t\n"), false, "E_INVALID cannot SUB with heartbeats disabled", F},
		{"D-ERR-29 SUB one param", init_, s("SUB t\n"), false, "E_INVALID SUB insufficient number of parameters", F},
		{"D-ERR-29 SUB no params", init_, s("SUB\n"), false, "E_INVALID SUB insufficient number of parameters", F},
		{"D-ERR-30 SUB bad topic", init_, s("SUB bad! c\n"), false, `E_BAD_TOPIC SUB topic name "bad!" is not valid`, F},
		{"D-ERR-30 SUB topic 65 chars", init_, s("SUB " + long65 + " c\n"), false, `E_BAD_TOPIC SUB topic name "` + long65 + `" is not valid`, F},
		{"D-ERR-30 SUB empty topic", init_, s("SUB  c\n"), false, `E_BAD_TOPIC SUB topic name "" is not valid`, F},
		{"D-ERR-30 SUB topic name is Go-quoted", init_, s("SUB a\"b c\n"), false, `E_BAD_TOPIC SUB topic name "a\"b" is not valid`, F},
		{"D-ERR-30 topic checked before channel", init_, s("SUB bad! bad!\n"), false, `E_BAD_TOPIC SUB topic name "bad!" is not valid`, F},
		{"D-ERR-31 SUB bad channel", init_, s("SUB t bad!\n"), false, `E_BAD_CHANNEL SUB channel name "bad!" is not valid`, F},
		{"D-ERR-31 SUB channel with trailing junk after #ephemeral", init_, s("SUB t c#ephemeralx\n"), false, `E_BAD_CHANNEL SUB channel name "c#ephemeralx" is not valid`, F},

		// RDY D-ERR-34..36
		{"D-ERR-34 RDY before SUB", init_, s("RDY 1\n"), false, "E_INVALID cannot RDY in current state", F},
		{"D-ERR-35 RDY -1", sub, s("RDY -1\n"), false, "E_INVALID RDY could not parse count -1", F},
		{"D-ERR-35 RDY +1", sub, s("RDY +1\n"), false, "E_INVALID RDY could not parse count +1", F},
		{"D-ERR-35 RDY 1.0", sub, s("RDY 1.0\n"), false, "E_INVALID RDY could not parse count 1.0", F},
		{"D-ERR-35 RDY x", sub, s("RDY x\n"), false, "E_INVALID RDY could not parse count x", F},
		{"D-ERR-36 RDY 2501", sub, s("RDY 2501\n"), false, "E_INVALID RDY count 2501 out of range 0-2500", F},

		// FIN D-ERR-37..39
		{"D-ERR-37 FIN before SUB", init_, s("FIN " + fakeID + "\n"), false, "E_INVALID cannot FIN in current state", F},
		{"D-ERR-37 FIN without id", sub, s("FIN\n"), false, "E_INVALID FIN insufficient number of params", F},
		{"D-ERR-38 FIN short id", sub, s("FIN abc\n"), false, "E_INVALID invalid message ID", F},
		{"D-ERR-38 FIN 17-char id", sub, s("FIN " + fakeID + "0\n"), false, "E_INVALID invalid message ID", F},
		{"D-ERR-39 FIN unknown id (non-fatal)", sub, s("FIN " + fakeID + "\n"), false, "E_FIN_FAILED FIN " + fakeID + " failed ID not in flight", N},
		{"D-ERR-39 FIN unknown id while closing (non-fatal)", closing, s("FIN " + fakeID + "\n"), false, "E_FIN_FAILED FIN " + fakeID + " failed ID not in flight", N},
		{"D-ERR-39 D-TCP-35 id content is not validated as hex", sub, s("FIN zzzzzzzzzzzzzzzz\n"), false, "E_FIN_FAILED FIN zzzzzzzzzzzzzzzz failed ID not in flight", N},

		// REQ D-ERR-38, 40, 41
		{"D-ERR-40 REQ before SUB", init_, s("REQ " + fakeID + " 0\n"), false, "E_INVALID cannot REQ in current state", F},
		{"D-ERR-40 REQ without params", sub, s("REQ\n"), false, "E_INVALID REQ insufficient number of params", F},
		{"D-ERR-40 REQ without timeout", sub, s("REQ " + fakeID + "\n"), false, "E_INVALID REQ insufficient number of params", F},
		{"D-ERR-38 REQ short id", sub, s("REQ abc 0\n"), false, "E_INVALID invalid message ID", F},
		{"D-ERR-40 REQ timeout -1", sub, s("REQ " + fakeID + " -1\n"), false, "E_INVALID REQ could not parse timeout -1", F},
		{"D-ERR-40 REQ timeout 1.5", sub, s("REQ " + fakeID + " 1.5\n"), false, "E_INVALID REQ could not parse timeout 1.5", F},
		{"D-ERR-41 REQ unknown id (non-fatal)", sub, s("REQ " + fakeID + " 0\n"), false, "E_REQ_FAILED REQ " + fakeID + " failed ID not in flight", N},
		{"D-ERR-41 REQ unknown id while closing (non-fatal)", closing, s("REQ " + fakeID + " 10\n"), false, "E_REQ_FAILED REQ " + fakeID + " failed ID not in flight", N},

		// TOUCH D-ERR-38, 42, 43
		{"D-ERR-42 TOUCH before SUB", init_, s("TOUCH " + fakeID + "\n"), false, "E_INVALID cannot TOUCH in current state", F},
		{"D-ERR-42 TOUCH without id", sub, s("TOUCH\n"), false, "E_INVALID TOUCH insufficient number of params", F},
		{"D-ERR-38 TOUCH short id", sub, s("TOUCH abc\n"), false, "E_INVALID invalid message ID", F},
		{"D-ERR-43 TOUCH unknown id (non-fatal)", sub, s("TOUCH " + fakeID + "\n"), false, "E_TOUCH_FAILED TOUCH " + fakeID + " failed ID not in flight", N},
		{"D-ERR-43 TOUCH unknown id while closing (non-fatal)", closing, s("TOUCH " + fakeID + "\n"), false, "E_TOUCH_FAILED TOUCH " + fakeID + " failed ID not in flight", N},

		// CLS D-ERR-44
		{"D-ERR-44 CLS before SUB", init_, s("CLS\n"), false, "E_INVALID cannot CLS in current state", F},
		{"D-ERR-44 CLS twice", closing, s("CLS\n"), false, "E_INVALID cannot CLS in current state", F},

		// PUB D-ERR-45, 46
		{"D-ERR-45 PUB without topic", init_, s("PUB\n"), false, "E_INVALID PUB insufficient number of parameters", F},
		{"D-ERR-45 PUB bad topic (before body)", init_, s("PUB bad!\n"), false, `E_BAD_TOPIC PUB topic name "bad!" is not valid`, F},
		{"D-ERR-45 PUB topic 65 chars", init_, pubCmd(long65, s("x")), false, `E_BAD_TOPIC PUB topic name "` + long65 + `" is not valid`, F},
		{"D-ERR-46 PUB truncated size", init_, s("PUB t\n\x00\x00"), true, "E_BAD_MESSAGE PUB failed to read message body size", F},
		{"D-ERR-46 PUB size 0", init_, hdr("PUB t", 0), false, "E_BAD_MESSAGE PUB invalid message body size 0", F},
		{"D-ERR-46 PUB size -1", init_, hdr("PUB t", -1), false, "E_BAD_MESSAGE PUB invalid message body size -1", F},
		{"D-ERR-46 PUB too big", init_, hdr("PUB t", 101), false, "E_BAD_MESSAGE PUB message too big 101 > 100", F},
		{"D-ERR-46 PUB truncated body", init_, cat(hdr("PUB t", 10), s("abc")), true, "E_BAD_MESSAGE PUB failed to read message body", F},
		{"D-ERR-46 PUB errors are fatal when subscribed too", sub, hdr("PUB t", 0), false, "E_BAD_MESSAGE PUB invalid message body size 0", F},

		// MPUB D-ERR-48..50
		{"D-ERR-48 MPUB without topic", init_, s("MPUB\n"), false, "E_INVALID MPUB insufficient number of parameters", F},
		{"D-ERR-48 Q-01 MPUB bad topic repeats the code", init_, s("MPUB bad!\n"), false, `E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "bad!" is not valid`, F},
		{"D-ERR-49 MPUB truncated body size", init_, s("MPUB t\n\x00"), true, "E_BAD_BODY MPUB failed to read body size", F},
		{"D-ERR-49 MPUB body size 0", init_, hdr("MPUB t", 0), false, "E_BAD_BODY MPUB invalid body size 0", F},
		{"D-ERR-49 MPUB body size -5", init_, hdr("MPUB t", -5), false, "E_BAD_BODY MPUB invalid body size -5", F},
		{"D-ERR-49 MPUB body too big", init_, hdr("MPUB t", 1001), false, "E_BAD_BODY MPUB body too big 1001 > 1000", F},
		{"D-ERR-49 MPUB truncated count", init_, cat(hdr("MPUB t", 10), s("\x00\x00")), true, "E_BAD_BODY MPUB failed to read message count", F},
		{"D-ERR-49 MPUB count 0", init_, hdr("MPUB t", 10, 0), false, "E_BAD_BODY MPUB invalid message count 0", F},
		{"D-ERR-49 MPUB count -1", init_, hdr("MPUB t", 10, -1), false, "E_BAD_BODY MPUB invalid message count -1", F},
		{"D-ERR-49 D-TCP-51 MPUB count above (max-body-size-4)/5", init_, hdr("MPUB t", 1000, 200), false, "E_BAD_BODY MPUB invalid message count 200", F},
		{"D-ERR-50 MPUB truncated message(0) size", init_, cat(hdr("MPUB t", 10, 1), s("\x00")), true, "E_BAD_MESSAGE MPUB failed to read message(0) body size", F},
		{"D-ERR-50 MPUB message(1) size 0", init_, cat(hdr("MPUB t", 14, 2), withBody(s("a")), be32(0)), false, "E_BAD_MESSAGE MPUB invalid message(1) body size 0", F},
		{"D-ERR-50 MPUB message(0) size -1", init_, hdr("MPUB t", 14, 1, -1), false, "E_BAD_MESSAGE MPUB invalid message(0) body size -1", F},
		{"D-ERR-50 MPUB message too big", init_, hdr("MPUB t", 200, 1, 101), false, "E_BAD_MESSAGE MPUB message too big 101 > 100", F},
		{"D-ERR-50 MPUB truncated message body", init_, cat(hdr("MPUB t", 20, 1, 10), s("abc")), true, "E_BAD_MESSAGE MPUB failed to read message body", F},

		// DPUB D-ERR-52, 53
		{"D-ERR-52 DPUB without timeout", init_, s("DPUB t\n"), false, "E_INVALID DPUB insufficient number of parameters", F},
		{"D-ERR-52 DPUB without params", init_, s("DPUB\n"), false, "E_INVALID DPUB insufficient number of parameters", F},
		{"D-ERR-52 DPUB bad topic", init_, dpubCmd("bad!", 10, s("x")), false, `E_BAD_TOPIC DPUB topic name "bad!" is not valid`, F},
		{"D-ERR-52 DPUB timeout -1", init_, cat(line("DPUB t -1"), withBody(s("x"))), false, "E_INVALID DPUB could not parse timeout -1", F},
		{"D-ERR-52 DPUB timeout x", init_, cat(line("DPUB t x"), withBody(s("x"))), false, "E_INVALID DPUB could not parse timeout x", F},
		{"D-ERR-52 DPUB timeout above max-req-timeout", init_, dpubCmd("t", 3600001, s("x")), false, "E_INVALID DPUB timeout 3600001 out of range 0-3600000", F},
		{"D-ERR-53 DPUB truncated size", init_, s("DPUB t 10\n\x00"), true, "E_BAD_MESSAGE DPUB failed to read message body size", F},
		{"D-ERR-53 DPUB size 0", init_, hdr("DPUB t 10", 0), false, "E_BAD_MESSAGE DPUB invalid message body size 0", F},
		{"D-ERR-53 DPUB too big", init_, hdr("DPUB t 10", 101), false, "E_BAD_MESSAGE DPUB message too big 101 > 100", F},
		{"D-ERR-53 DPUB truncated body", init_, cat(hdr("DPUB t 10", 10), s("abc")), true, "E_BAD_MESSAGE DPUB failed to read message body", F},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialV2(t, addr)
			switch tc.pre {
			case sub:
				c.sub("t", "c")
			case closing:
				c.sub("t", "c")
				c.write(line("CLS"))
				c.expectResponse("CLOSE_WAIT")
			case nohb:
				c.write(identifyCmd(`{"heartbeat_interval":-1}`))
				c.expectResponse("OK")
			}
			c.write(tc.send) // one write: the whole command is in the server's buffer
			if tc.half {
				c.closeWrite()
			}
			c.expectError(tc.want)
			if tc.fatal {
				c.expectClosed()
			} else {
				c.expectAlive()
			}
		})
	}
}

// ---------------------------------------------------------------------------
// D-TCP-07: command/state matrix

func TestWireStateMatrix_DTCP07(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)

	cmds := map[string][]byte{
		"IDENTIFY": identifyCmd("{}"),
		"AUTH":     cat(line("AUTH"), withBody([]byte("secret"))),
		"SUB":      line("SUB t c"),
		"PUB":      pubCmd("matrix", []byte("x")),
		"MPUB":     mpubCmd("matrix", []byte("x"), []byte("y")),
		"DPUB":     dpubCmd("matrix", 1000, []byte("x")),
		"NOP":      line("NOP"),
		"RDY":      line("RDY 1"),
		"FIN":      line("FIN " + fakeID),
		"REQ":      line("REQ " + fakeID + " 0"),
		"TOUCH":    line("TOUCH " + fakeID),
		"CLS":      line("CLS"),
	}
	// outcome: "ok:<resp>", "silent", "nonfatal:<err>", "fatal:<err>"
	cannot := func(cmd string) string { return "fatal:E_INVALID cannot " + cmd + " in current state" }
	notInFlight := map[string]string{
		"FIN":   "nonfatal:E_FIN_FAILED FIN " + fakeID + " failed ID not in flight",
		"REQ":   "nonfatal:E_REQ_FAILED REQ " + fakeID + " failed ID not in flight",
		"TOUCH": "nonfatal:E_TOUCH_FAILED TOUCH " + fakeID + " failed ID not in flight",
	}
	matrix := map[string]map[string]string{
		"init": {
			"IDENTIFY": "ok:OK", "AUTH": "fatal:E_AUTH_DISABLED AUTH disabled", "SUB": "ok:OK",
			"PUB": "ok:OK", "MPUB": "ok:OK", "DPUB": "ok:OK", "NOP": "silent",
			"RDY": cannot("RDY"), "FIN": cannot("FIN"), "REQ": cannot("REQ"), "TOUCH": cannot("TOUCH"), "CLS": cannot("CLS"),
		},
		"subscribed": {
			"IDENTIFY": cannot("IDENTIFY"), "AUTH": cannot("AUTH"), "SUB": cannot("SUB"),
			"PUB": "ok:OK", "MPUB": "ok:OK", "DPUB": "ok:OK", "NOP": "silent",
			"RDY": "silent", "FIN": notInFlight["FIN"], "REQ": notInFlight["REQ"], "TOUCH": notInFlight["TOUCH"], "CLS": "ok:CLOSE_WAIT",
		},
		"closing": {
			"IDENTIFY": cannot("IDENTIFY"), "AUTH": cannot("AUTH"), "SUB": cannot("SUB"),
			"PUB": "ok:OK", "MPUB": "ok:OK", "DPUB": "ok:OK", "NOP": "silent",
			"RDY": "silent", "FIN": notInFlight["FIN"], "REQ": notInFlight["REQ"], "TOUCH": notInFlight["TOUCH"], "CLS": cannot("CLS"),
		},
	}
	for _, state := range []string{"init", "subscribed", "closing"} {
		for _, cmd := range []string{"IDENTIFY", "AUTH", "SUB", "PUB", "MPUB", "DPUB", "NOP", "RDY", "FIN", "REQ", "TOUCH", "CLS"} {
			want := matrix[state][cmd]
			t.Run(state+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				c := dialV2(t, addr)
				if state != "init" {
					c.sub("t", "c")
				}
				if state == "closing" {
					c.write(line("CLS"))
					c.expectResponse("CLOSE_WAIT")
				}
				c.write(cmds[cmd])
				kind, text, _ := strings.Cut(want, ":")
				switch kind {
				case "ok":
					c.expectResponse(text)
					c.expectAlive()
				case "silent":
					c.expectAlive() // the next frame must be the probe's OK
				case "nonfatal":
					c.expectError(text)
					c.expectAlive()
				case "fatal":
					c.expectError(text)
					c.expectClosed()
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// D-TCP-02, D-TCP-04, D-TCP-39: line syntax and NOP

func TestWireNOPAndLineSyntax_DTCP02_DTCP39(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil)

	t.Run("D-TCP-39 NOP is silent in init state", func(t *testing.T) {
		c := dialV2(t, addr)
		c.write([]byte("NOP\nNOP\nNOP\n"))
		c.expectSilence(quiet)
		c.expectAlive()
	})
	t.Run("D-TCP-02 trailing CR is stripped", func(t *testing.T) {
		c := dialV2(t, addr)
		c.write(cat([]byte("NOP\r\n"), []byte("PUB crlf\r\n"), withBody([]byte("x"))))
		c.expectResponse("OK")
		if _, err := n.GetExistingTopic("crlf"); err != nil {
			t.Fatalf("PUB crlf\\r\\n should publish to topic \"crlf\": %v", err)
		}
	})
	t.Run("D-TCP-04 RDY FIN REQ TOUCH NOP answer nothing on success", func(t *testing.T) {
		publish(t, addr, "silent", "m")
		c := consumer(t, addr, "silent", "c", "", 0)
		c.write([]byte("RDY 1\n"))
		m := c.readMsg()
		c.write([]byte("TOUCH " + m.id + "\nREQ " + m.id + " 0\n"))
		m2 := c.readMsg() // the redelivery is the only frame
		c.write([]byte("FIN " + m2.id + "\nNOP\n"))
		c.expectSilence(quiet)
		c.expectAlive()
	})
}

// ---------------------------------------------------------------------------
// D-TCP-11..20: IDENTIFY

// D-TCP-20: the exact default JSON, key order included.
func TestWireIdentifyDefaultJSON_DTCP20(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil) // default options
	c := dialV2(t, addr)
	c.write(identifyCmd(`{"feature_negotiation":true}`))
	c.expectResponse(`{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250,"topology_region":"","topology_zone":""}`)
	c.expectAlive()
}

// D-TCP-19, D-TCP-11, D-TCP-13: no negotiation → OK, unknown keys ignored.
func TestWireIdentifyOK_DTCP19(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)
	for _, js := range []string{
		`{}`,
		`{"feature_negotiation":false}`,
		`{"feature_negotiation":false,"tls_v1":true,"snappy":true,"deflate":true}`,
		`{"short_id":"x","long_id":"y","unknown":[1,2,{"a":null}]}`,
		`{"client_id":"cid","hostname":"h.example","user_agent":"wire-test/1.0"}`,
		`{"heartbeat_interval":1000}`,
		`{"heartbeat_interval":60000}`,
		`{"heartbeat_interval":0}`,
		`{"heartbeat_interval":-1}`,
		`{"output_buffer_timeout":25,"output_buffer_size":64}`,
		`{"output_buffer_timeout":30000,"output_buffer_size":65536}`,
		`{"sample_rate":99}`,
		`{"msg_timeout":1000}`,
		`{"msg_timeout":900000}`,
	} {
		t.Run("D-TCP-19 "+js, func(t *testing.T) {
			t.Parallel()
			c := dialV2(t, addr)
			c.write(identifyCmd(js))
			c.expectResponse("OK")
			c.expectAlive()
		})
	}
}

// D-TCP-14..18, D-TCP-20: negotiated values echoed for this client.
func TestWireIdentifyNegotiatedValues_DTCP14to18(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)
	cases := []struct {
		name string
		js   string
		want map[string]int64
	}{
		{"D-TCP-18 msg_timeout 1000", `"msg_timeout":1000`, map[string]int64{"msg_timeout": 1000}},
		{"D-TCP-18 msg_timeout max 900000", `"msg_timeout":900000`, map[string]int64{"msg_timeout": 900000}},
		{"D-TCP-18 msg_timeout 0 means default", `"msg_timeout":0`, map[string]int64{"msg_timeout": 60000}},
		{"D-TCP-17 sample_rate 99", `"sample_rate":99`, map[string]int64{"sample_rate": 99}},
		{"D-TCP-17 sample_rate 0", `"sample_rate":0`, map[string]int64{"sample_rate": 0}},
		{"D-TCP-15 output_buffer_timeout -1 disables", `"output_buffer_timeout":-1`, map[string]int64{"output_buffer_timeout": 0, "output_buffer_size": 16384}},
		{"D-TCP-15 output_buffer_timeout 0 means default", `"output_buffer_timeout":0`, map[string]int64{"output_buffer_timeout": 250}},
		{"D-TCP-15 output_buffer_timeout min 25", `"output_buffer_timeout":25`, map[string]int64{"output_buffer_timeout": 25}},
		{"D-TCP-15 output_buffer_timeout max 30000", `"output_buffer_timeout":30000`, map[string]int64{"output_buffer_timeout": 30000}},
		{"D-TCP-16 output_buffer_size -1 unbuffered", `"output_buffer_size":-1`, map[string]int64{"output_buffer_size": 1, "output_buffer_timeout": 0}},
		{"D-TCP-16 output_buffer_size 0 means default", `"output_buffer_size":0`, map[string]int64{"output_buffer_size": 16384}},
		{"D-TCP-16 output_buffer_size min 64", `"output_buffer_size":64`, map[string]int64{"output_buffer_size": 64}},
		{"D-TCP-16 output_buffer_size max 65536", `"output_buffer_size":65536`, map[string]int64{"output_buffer_size": 65536}},
		{"D-TCP-14 heartbeat_interval -1 accepted", `"heartbeat_interval":-1`, map[string]int64{"msg_timeout": 60000}},
	}
	keyOrder := []string{"max_rdy_count", "version", "max_msg_timeout", "msg_timeout", "tls_v1", "deflate", "deflate_level", "max_deflate_level", "snappy", "sample_rate", "auth_required", "output_buffer_size", "output_buffer_timeout", "topology_region", "topology_zone"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialV2(t, addr)
			f := c.identify(`{"feature_negotiation":true,` + tc.js + `}`)
			checkIdentifyJSON(t, f.data, keyOrder, tc.want)
			c.expectAlive()
		})
	}
}

// D-TCP-20: the response reflects nsqd's options; deflate_level is reported
// as 6 capped by --max-deflate-level while deflate is not negotiated.
func TestWireIdentifyOptionsReflected_DTCP20(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, func(o *nsqd.Options) {
		o.MaxRdyCount = 100
		o.MaxMsgTimeout = 5 * time.Minute
		o.MsgTimeout = 30 * time.Second
		o.OutputBufferTimeout = 100 * time.Millisecond
		o.MaxDeflateLevel = 3
		o.TopologyRegion = "r1"
		o.TopologyZone = "z1"
	})
	c := dialV2(t, addr)
	c.write(identifyCmd(`{"feature_negotiation":true}`))
	c.expectResponse(`{"max_rdy_count":100,"version":"1.3.0","max_msg_timeout":300000,"msg_timeout":30000,"tls_v1":false,"deflate":false,"deflate_level":3,"max_deflate_level":3,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":100,"topology_region":"r1","topology_zone":"z1"}`)

	_, addr2 := startNSQD(t, nil)
	for _, js := range []string{
		`{"feature_negotiation":true,"deflate_level":2}`,
		`{"feature_negotiation":true,"deflate_level":9}`,
		`{"feature_negotiation":true,"deflate":false,"deflate_level":1}`,
	} {
		c := dialV2(t, addr2)
		f := c.identify(js)
		var resp struct {
			DeflateLevel int `json:"deflate_level"`
		}
		if err := json.Unmarshal(f.data, &resp); err != nil || resp.DeflateLevel != 6 {
			t.Errorf("IDENTIFY %s without deflate: deflate_level = %d, want 6 (err %v)", js, resp.DeflateLevel, err)
		}
	}
}

// checkIdentifyJSON checks key order and the wanted integer values.
func checkIdentifyJSON(t *testing.T, data []byte, keyOrder []string, want map[string]int64) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("IDENTIFY response is not a JSON object: %s", data)
	}
	var keys []string
	got := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("bad JSON %s: %v", data, err)
		}
		k := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("bad JSON %s: %v", data, err)
		}
		keys = append(keys, k)
		got[k] = v
	}
	if strings.Join(keys, ",") != strings.Join(keyOrder, ",") {
		t.Errorf("IDENTIFY keys\n got %v\nwant %v", keys, keyOrder)
	}
	for k, w := range want {
		num, ok := got[k].(json.Number)
		if !ok || num.String() != strconv.FormatInt(w, 10) {
			t.Errorf("IDENTIFY %s = %v, want %d (response %s)", k, got[k], w, data)
		}
	}
}

// D-ERR-10..14, D-TCP-14..18: out-of-range IDENTIFY values are fatal.
func TestWireIdentifyBounds_DERR10to14(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil) // default bounds
	cases := []struct {
		name, js, want string
	}{
		{"D-ERR-10 heartbeat 999", `{"heartbeat_interval":999}`, "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid"},
		{"D-ERR-10 heartbeat 1", `{"heartbeat_interval":1}`, "E_BAD_BODY IDENTIFY heartbeat interval (1) is invalid"},
		{"D-ERR-10 heartbeat 60001", `{"heartbeat_interval":60001}`, "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid"},
		{"D-ERR-10 heartbeat -2", `{"heartbeat_interval":-2}`, "E_BAD_BODY IDENTIFY heartbeat interval (-2) is invalid"},
		{"D-ERR-11 output_buffer_timeout 24", `{"output_buffer_timeout":24}`, "E_BAD_BODY IDENTIFY output buffer timeout (24) is invalid"},
		{"D-ERR-11 output_buffer_timeout 30001", `{"output_buffer_timeout":30001}`, "E_BAD_BODY IDENTIFY output buffer timeout (30001) is invalid"},
		{"D-ERR-11 output_buffer_timeout -2", `{"output_buffer_timeout":-2}`, "E_BAD_BODY IDENTIFY output buffer timeout (-2) is invalid"},
		{"D-ERR-11 timeout validated before size", `{"output_buffer_timeout":24,"output_buffer_size":63}`, "E_BAD_BODY IDENTIFY output buffer timeout (24) is invalid"},
		{"D-ERR-12 output_buffer_size 63", `{"output_buffer_size":63}`, "E_BAD_BODY IDENTIFY output buffer size (63) is invalid"},
		{"D-ERR-12 output_buffer_size 1", `{"output_buffer_size":1}`, "E_BAD_BODY IDENTIFY output buffer size (1) is invalid"},
		{"D-ERR-12 output_buffer_size 65537", `{"output_buffer_size":65537}`, "E_BAD_BODY IDENTIFY output buffer size (65537) is invalid"},
		{"D-ERR-12 output_buffer_size -2", `{"output_buffer_size":-2}`, "E_BAD_BODY IDENTIFY output buffer size (-2) is invalid"},
		{"D-ERR-13 sample_rate 100", `{"sample_rate":100}`, "E_BAD_BODY IDENTIFY sample rate (100) is invalid"},
		{"D-ERR-13 sample_rate -1", `{"sample_rate":-1}`, "E_BAD_BODY IDENTIFY sample rate (-1) is invalid"},
		{"D-ERR-14 msg_timeout 999", `{"msg_timeout":999}`, "E_BAD_BODY IDENTIFY msg timeout (999) is invalid"},
		{"D-ERR-14 msg_timeout 900001", `{"msg_timeout":900001}`, "E_BAD_BODY IDENTIFY msg timeout (900001) is invalid"},
		{"D-ERR-14 msg_timeout -1", `{"msg_timeout":-1}`, "E_BAD_BODY IDENTIFY msg timeout (-1) is invalid"},
		{"D-ERR-10 with feature_negotiation", `{"feature_negotiation":true,"heartbeat_interval":999}`, "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dialV2(t, addr)
			c.write(identifyCmd(tc.js))
			c.expectError(tc.want)
			c.expectClosed()
		})
	}
}

// D-TCP-12, Q-02: IDENTIFY may repeat before SUB; the stored fields follow
// the last one, the pump keeps the first one's msg_timeout; after SUB it is
// fatal (D-ERR-04).
func TestWireIdentifyRepeated_DTCP12(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, func(o *nsqd.Options) { o.QueueScanInterval = 20 * time.Millisecond })

	t.Run("Q-02 two responses then fatal after SUB", func(t *testing.T) {
		t.Parallel()
		c := dialV2(t, addr)
		c.write(identifyCmd(`{}`))
		c.expectResponse("OK")
		f := c.identify(`{"feature_negotiation":true,"msg_timeout":2000}`)
		var resp struct {
			MsgTimeout int64 `json:"msg_timeout"`
		}
		if err := json.Unmarshal(f.data, &resp); err != nil || resp.MsgTimeout != 2000 {
			t.Fatalf("second IDENTIFY: want msg_timeout 2000 in %s (err %v)", f.data, err)
		}
		c.sub("rep", "c")
		c.write(identifyCmd(`{}`))
		c.expectError("E_INVALID cannot IDENTIFY in current state")
		c.expectClosed()
	})

	t.Run("D-TCP-12 pump keeps the first IDENTIFY's msg_timeout", func(t *testing.T) {
		t.Parallel()
		c := dialV2(t, addr)
		c.write(cat(identifyCmd(`{"msg_timeout":1000}`), identifyCmd(`{"msg_timeout":60000}`)))
		c.expectResponse("OK")
		c.expectResponse("OK")
		c.sub("rep2", "c")
		c.rdy(1)
		publish(t, addr, "rep2", "m")
		m := c.readMsg()
		start := time.Now()
		m2 := c.readMsgWithin(4 * time.Second) // 1 s timeout applies, not 60 s
		if m2.id != m.id || m2.attempts != 2 {
			t.Fatalf("want redelivery of %s with attempts 2, got %s attempts %d", m.id, m2.id, m2.attempts)
		}
		t.Logf("redelivered after %v", time.Since(start).Round(time.Millisecond))
	})
}

// ---------------------------------------------------------------------------
// D-TCP-30, D-TCP-31: SUB and --max-channel-consumers

func TestWireSubMaxChannelConsumers_DTCP31(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, func(o *nsqd.Options) { o.MaxChannelConsumers = 1 })

	a := consumer(t, addr, "t", "c", "", 0)
	b := dialV2(t, addr)
	b.write(line("SUB t c"))
	b.expectError("E_SUB_FAILED SUB failed consumers for t:c exceeds limit of 1")
	b.expectClosed()

	// other channels are unaffected, and the first consumer still works
	consumer(t, addr, "t", "c2", "", 0)
	a.expectAlive()

	// once the first consumer leaves, the slot is free again
	ch := getChannel(t, n, "t", "c")
	a.Close()
	eventually(t, ioTimeout, "client count 0 after disconnect", func() bool { return ch.ClientCount() == 0 })
	consumer(t, addr, "t", "c", "", 0)
}

// D-TCP-30: SUB creates topic and channel.
func TestWireSubCreates_DTCP30(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil)
	if _, err := n.GetExistingTopic("fresh"); err == nil {
		t.Fatalf("topic should not exist yet")
	}
	consumer(t, addr, "fresh", "ch", "", 0)
	ch := getChannel(t, n, "fresh", "ch")
	if ch.ClientCount() != 1 {
		t.Fatalf("ClientCount = %d, want 1", ch.ClientCount())
	}
}

// ---------------------------------------------------------------------------
// D-NAME-01 through PUB (topics) and SUB (channels)

func TestWireNames_DNAME01(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)
	cases := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"ok.name_-1", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{strings.Repeat("a", 54) + "#ephemeral", true},
		{strings.Repeat("a", 55) + "#ephemeral", false},
		{"#ephemeral", false},
		{"x#ephemeralx", false},
		{"a:b", false},
		{"a/b", false},
		{"é", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("D-NAME-01 %q", tc.name), func(t *testing.T) {
			t.Parallel()
			p := dialV2(t, addr)
			p.write(pubCmd(tc.name, []byte("x")))
			if tc.ok {
				p.expectResponse("OK")
			} else {
				p.expectError(fmt.Sprintf("E_BAD_TOPIC PUB topic name %q is not valid", tc.name))
				p.expectClosed()
			}
			c := dialV2(t, addr)
			c.write(line("SUB names " + tc.name))
			if tc.ok {
				c.expectResponse("OK")
			} else {
				c.expectError(fmt.Sprintf("E_BAD_CHANNEL SUB channel name %q is not valid", tc.name))
				c.expectClosed()
			}
		})
	}
}

// ---------------------------------------------------------------------------
// D-TCP-40..46, D-TOPIC-02/03, D-ID-01: publishing and the message frame

func TestWirePublishAndMessageFrame_DTCP45(t *testing.T) {
	t.Parallel()
	const nodeID = 617
	n, addr := startNSQD(t, func(o *nsqd.Options) { o.ID = nodeID })

	t.Run("D-TCP-40 D-TCP-45 D-TCP-46 D-TCP-47 PUB then message frame layout", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "layout", "c", "", 1)
		before := time.Now().UnixNano()
		p := dialV2(t, addr)
		p.write(pubCmd("layout", []byte("hello")))
		p.expectResponse("OK")
		m := c.readMsg()
		after := time.Now().UnixNano()
		if size := binary.BigEndian.Uint32(m.raw[0:4]); size != 4+26+5 {
			t.Errorf("frame size field = %d, want %d", size, 4+26+5)
		}
		if len(m.data) != 26+5 {
			t.Errorf("message data length = %d, want 31", len(m.data))
		}
		if m.attempts != 1 {
			t.Errorf("attempts = %d, want 1", m.attempts)
		}
		if len(m.id) != 16 || !isLowerHex(m.id) {
			t.Errorf("id %q is not 16 lowercase hex chars", m.id)
		}
		if m.body != "hello" {
			t.Errorf("body = %q", m.body)
		}
		if m.ts < before || m.ts > after {
			t.Errorf("timestamp %d not within publish window [%d, %d]", m.ts, before, after)
		}
		// D-ID-01: ((now_ns>>20) - 1288834974288) << 22 | node << 12 | seq
		id, err := strconv.ParseUint(m.id, 16, 64)
		if err != nil {
			t.Fatalf("id %q: %v", m.id, err)
		}
		if node := (id >> 12) & 0x3ff; node != nodeID {
			t.Errorf("D-ID-01 node bits of %s = %d, want %d", m.id, node, nodeID)
		}
		idTime := int64((id>>22)+1288834974288) << 20
		if d := time.Duration(idTime - m.ts); d < -2*time.Second || d > 2*time.Second {
			t.Errorf("D-ID-01 time part of %s is %v away from the message timestamp", m.id, d)
		}
		c.write(line("FIN " + m.id))
		c.expectAlive()
		tp, err := n.GetExistingTopic("layout")
		if err != nil {
			t.Fatal(err)
		}
		if tp.MessageCount() != 1 {
			t.Errorf("topic MessageCount = %d, want 1", tp.MessageCount())
		}
	})

	t.Run("D-TOPIC-03 D-TCP-46 every channel gets the same ID", func(t *testing.T) {
		t.Parallel()
		c1 := consumer(t, addr, "fan", "c1", "", 1)
		c2 := consumer(t, addr, "fan", "c2", "", 1)
		publish(t, addr, "fan", "body")
		m1, m2 := c1.readMsg(), c2.readMsg()
		if m1.id != m2.id || m1.ts != m2.ts || m1.body != m2.body || m1.attempts != 1 || m2.attempts != 1 {
			t.Fatalf("copies differ: %+v vs %+v", m1, m2)
		}
	})

	t.Run("D-TCP-41 MPUB delivers every message with distinct IDs", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "mpub", "c", "", 10)
		p := dialV2(t, addr)
		p.write(mpubCmd("mpub", []byte("m1"), []byte("m2"), []byte("m3")))
		p.expectResponse("OK")
		ids := map[string]bool{}
		bodies := map[string]bool{}
		for i := 0; i < 3; i++ {
			m := c.readMsg()
			ids[m.id] = true
			bodies[m.body] = true
			if m.attempts != 1 {
				t.Errorf("attempts %d", m.attempts)
			}
		}
		if len(ids) != 3 || !bodies["m1"] || !bodies["m2"] || !bodies["m3"] {
			t.Fatalf("want 3 distinct IDs and bodies m1..m3, got %v %v", ids, bodies)
		}
		c.expectSilence(quiet)
	})

	t.Run("D-TCP-42 Q-12 MPUB outer size is advisory", func(t *testing.T) {
		t.Parallel()
		p := dialV2(t, addr)
		// outer size says 500, the two members take 14 bytes: the server
		// reads exactly the members and the stream stays in sync.
		p.write(cat(line("MPUB q12"), be32(500), be32(2), withBody([]byte("a")), withBody([]byte("b"))))
		p.expectResponse("OK")
		p.expectAlive()
		tp, err := n.GetExistingTopic("q12")
		if err != nil || tp.MessageCount() != 2 {
			t.Fatalf("want topic q12 with 2 messages (err %v)", err)
		}
	})

	t.Run("D-TCP-43 D-DEF-02 DPUB defers per channel", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "dpub", "c", "", 1)
		ch := getChannel(t, n, "dpub", "c")
		p := dialV2(t, addr)
		start := time.Now()
		p.write(dpubCmd("dpub", 500, []byte("later")))
		p.expectResponse("OK")
		eventually(t, ioTimeout, "channel DeferredCount 1", func() bool { return ch.DeferredCount() == 1 })
		if mc := ch.MessageCount(); mc != 1 {
			t.Errorf("D-DEF-02 channel MessageCount = %d right after DPUB, want 1", mc)
		}
		m := c.readMsgWithin(3 * time.Second)
		el := time.Since(start)
		if el < 450*time.Millisecond {
			t.Fatalf("DPUB 500 delivered after only %v", el)
		}
		if m.body != "later" || m.attempts != 1 {
			t.Fatalf("got %+v", m)
		}
		t.Logf("DPUB 500 delivered after %v", el.Round(time.Millisecond))
	})

	t.Run("D-TCP-43 DPUB timeout exactly max-req-timeout is OK", func(t *testing.T) {
		t.Parallel()
		p := dialV2(t, addr)
		p.write(dpubCmd("dpubmax", 3600000, []byte("x")))
		p.expectResponse("OK")
		p.write(dpubCmd("dpubmax", 0, []byte("y")))
		p.expectResponse("OK")
	})

	t.Run("D-TOPIC-02 messages wait in a topic without channels", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "nochan", "a", "b", "c")
		c := consumer(t, addr, "nochan", "late", "", 5)
		got := map[string]bool{}
		for i := 0; i < 3; i++ {
			got[c.readMsg().body] = true
		}
		if !got["a"] || !got["b"] || !got["c"] {
			t.Fatalf("got %v", got)
		}
	})

	t.Run("D-TOPIC-01 PUB creates the topic", func(t *testing.T) {
		t.Parallel()
		if _, err := n.GetExistingTopic("created"); err == nil {
			t.Fatal("topic exists before PUB")
		}
		publish(t, addr, "created", "x")
		tp, err := n.GetExistingTopic("created")
		if err != nil {
			t.Fatalf("topic missing after PUB: %v", err)
		}
		if tp.Depth() != 1 {
			t.Errorf("topic depth = %d, want 1", tp.Depth())
		}
	})
}

// D-TCP-41, D-TCP-51: MPUB bounds that are accepted; validation happens
// before anything is queued.
func TestWireMPUBLimits_DTCP41(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, func(o *nsqd.Options) {
		o.MaxMsgSize = 100
		o.MaxBodySize = 1000
	})

	t.Run("D-TCP-51 199 messages = (1000-4)/5 accepted", func(t *testing.T) {
		bodies := make([][]byte, 199)
		for i := range bodies {
			bodies[i] = []byte{'x'}
		}
		p := dialV2(t, addr)
		p.write(mpubCmd("many", bodies...)) // 4+199*5 = 999 bytes
		p.expectResponse("OK")
	})
	t.Run("D-TCP-51 message of exactly max-msg-size accepted", func(t *testing.T) {
		p := dialV2(t, addr)
		p.write(pubCmd("exact", bytes.Repeat([]byte("x"), 100)))
		p.expectResponse("OK")
		p.write(mpubCmd("exact", bytes.Repeat([]byte("y"), 100)))
		p.expectResponse("OK")
		p.write(dpubCmd("exact", 0, bytes.Repeat([]byte("z"), 100)))
		p.expectResponse("OK")
	})
	t.Run("D-TCP-41 nothing queued when a later member is invalid", func(t *testing.T) {
		p := dialV2(t, addr)
		p.write(cat(line("MPUB partial"), be32(14), be32(2), withBody([]byte("a")), be32(0)))
		p.expectError("E_BAD_MESSAGE MPUB invalid message(1) body size 0")
		p.expectClosed()
		if tp, err := n.GetExistingTopic("partial"); err == nil && (tp.MessageCount() != 0 || tp.Depth() != 0) {
			t.Fatalf("MPUB queued %d messages (depth %d) despite the error", tp.MessageCount(), tp.Depth())
		}
	})
}

// ---------------------------------------------------------------------------
// D-TCP-33/34: RDY

func TestWireRDY_DTCP34(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil)

	t.Run("D-TCP-34 RDY 2 caps in-flight at 2; FIN frees a slot", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "rdy2", "1", "2", "3", "4", "5")
		c := consumer(t, addr, "rdy2", "c", "", 2)
		m1, m2 := c.readMsg(), c.readMsg()
		c.expectSilence(quiet)
		ch := getChannel(t, n, "rdy2", "c")
		if got := ch.InFlightCount(); got != 2 {
			t.Errorf("InFlightCount = %d, want 2", got)
		}
		c.write(line("FIN " + m1.id))
		m3 := c.readMsg()
		c.expectSilence(quiet)
		if m3.id == m1.id || m3.id == m2.id {
			t.Fatalf("third message repeats an id")
		}
		c.write(line("FIN " + m2.id + "\nFIN " + m3.id))
		c.readMsg()
		c.readMsg()
		c.expectSilence(quiet)
	})

	t.Run("D-TCP-33 RDY without count means 1", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "rdy1", "1", "2")
		c := consumer(t, addr, "rdy1", "c", "", 0)
		c.write(line("RDY"))
		m := c.readMsg()
		c.expectSilence(quiet)
		c.write(line("FIN " + m.id))
		c.readMsg()
	})

	t.Run("D-TCP-34 RDY 0 stops delivery, value persists", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "rdy0", "c", "", 0)
		c.write(line("RDY 0"))
		publish(t, addr, "rdy0", "1")
		c.expectSilence(quiet)
		c.rdy(1)
		m := c.readMsg()
		c.write(line("RDY 0\nFIN " + m.id))
		publish(t, addr, "rdy0", "2")
		c.expectSilence(quiet)
	})

	t.Run("D-TCP-34 RDY lowered below in-flight is a cap, not a credit", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "rdylow", "1", "2", "3")
		c := consumer(t, addr, "rdylow", "c", "", 2)
		m1, m2 := c.readMsg(), c.readMsg()
		c.write(line("RDY 1\nFIN " + m1.id))
		c.expectSilence(quiet) // in_flight 1 == RDY 1
		c.write(line("FIN " + m2.id))
		c.readMsg()
		c.expectSilence(quiet)
	})

	t.Run("D-TCP-33 RDY max-rdy-count accepted", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "rdymax", "c", "", 2500)
		c.expectAlive()
	})
}

// ---------------------------------------------------------------------------
// D-TCP-38: CLS

func TestWireCLS_DTCP38(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil)
	publish(t, addr, "cls", "first")
	c := consumer(t, addr, "cls", "c", "", 5)
	m := c.readMsg()
	c.write(line("CLS"))
	c.expectResponse("CLOSE_WAIT")
	// in closing state RDY is ignored and nothing new is delivered
	c.write(line("RDY 5"))
	publish(t, addr, "cls", "second")
	c.expectSilence(quiet)
	ch := getChannel(t, n, "cls", "c")
	if d := ch.Depth(); d != 1 {
		t.Errorf("channel depth = %d, want 1 (second message undelivered)", d)
	}
	// the in-flight message can still be finished, and the server does not close
	c.write(line("FIN " + m.id))
	c.expectAlive()
	eventually(t, ioTimeout, "in-flight 0 after FIN", func() bool { return ch.InFlightCount() == 0 })
	c.expectSilence(quiet)
}

// ---------------------------------------------------------------------------
// D-TCP-35..37, D-ERR-39/41/43, D-REQ-01, D-DEF-01, D-INFL-*, D-TCP-53

func TestWireFinReqTouch(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil) // default scan interval and refresh: Q-14 fix must hold

	t.Run("D-TCP-35 D-ERR-39 FIN twice is non-fatal", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "fin2", "x")
		c := consumer(t, addr, "fin2", "c", "", 1)
		m := c.readMsg()
		c.write(line("FIN " + m.id))
		c.expectSilence(quiet)
		c.write(line("FIN " + m.id))
		c.expectError("E_FIN_FAILED FIN " + m.id + " failed ID not in flight")
		c.expectAlive()
		c.write(line("REQ " + m.id + " 0"))
		c.expectError("E_REQ_FAILED REQ " + m.id + " failed ID not in flight")
		c.write(line("TOUCH " + m.id))
		c.expectError("E_TOUCH_FAILED TOUCH " + m.id + " failed ID not in flight")
		c.expectAlive()
	})

	t.Run("D-ERR-39 D-ERR-41 D-ERR-43 client does not own message", func(t *testing.T) {
		t.Parallel()
		owner := consumer(t, addr, "own", "c", "", 1)
		other := consumer(t, addr, "own", "c", "", 0)
		publish(t, addr, "own", "x")
		m := owner.readMsg()
		other.write(line("FIN " + m.id))
		other.expectError("E_FIN_FAILED FIN " + m.id + " failed client does not own message")
		other.write(line("REQ " + m.id + " 0"))
		other.expectError("E_REQ_FAILED REQ " + m.id + " failed client does not own message")
		other.write(line("TOUCH " + m.id))
		other.expectError("E_TOUCH_FAILED TOUCH " + m.id + " failed client does not own message")
		other.expectAlive()
		owner.write(line("FIN " + m.id))
		owner.expectAlive()
	})

	t.Run("D-TCP-36 D-REQ-01 REQ 0 redelivers with attempts 2", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "req0", "x")
		c := consumer(t, addr, "req0", "c", "", 1)
		ch := getChannel(t, n, "req0", "c")
		m := c.readMsg()
		c.write(line("REQ " + m.id + " 0"))
		m2 := c.readMsg()
		if m2.id != m.id || m2.attempts != 2 || m2.body != m.body || m2.ts != m.ts {
			t.Fatalf("redelivery %+v, want same id/body/timestamp with attempts 2 (first %+v)", m2, m)
		}
		if rc := ch.RequeueCount(); rc != 1 {
			t.Errorf("channel RequeueCount = %d, want 1", rc)
		}
		c.write(line("FIN " + m2.id))
		c.expectAlive()
	})

	t.Run("D-TCP-36 D-DEF-01 REQ with delay is deferred", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "reqd", "x")
		c := consumer(t, addr, "reqd", "c", "", 1)
		ch := getChannel(t, n, "reqd", "c")
		m := c.readMsg()
		start := time.Now()
		c.write(line("REQ " + m.id + " 600"))
		eventually(t, ioTimeout, "DeferredCount 1 and InFlightCount 0", func() bool {
			return ch.DeferredCount() == 1 && ch.InFlightCount() == 0
		})
		c.expectSilence(400 * time.Millisecond)
		m2 := c.readMsgWithin(3 * time.Second) // Q-14 fixed: not ~5 s late
		el := time.Since(start)
		if el < 550*time.Millisecond {
			t.Fatalf("REQ 600 redelivered after only %v", el)
		}
		if m2.id != m.id || m2.attempts != 2 {
			t.Fatalf("got %s attempts %d, want %s attempts 2", m2.id, m2.attempts, m.id)
		}
		if ch.RequeueCount() != 1 {
			t.Errorf("RequeueCount = %d, want 1", ch.RequeueCount())
		}
		t.Logf("REQ 600 redelivered after %v", el.Round(time.Millisecond))
	})

	t.Run("D-TCP-36 REQ timeout above max is clamped, not an error", func(t *testing.T) {
		t.Parallel()
		publish(t, addr, "reqclamp", "x")
		c := consumer(t, addr, "reqclamp", "c", "", 1)
		ch := getChannel(t, n, "reqclamp", "c")
		m := c.readMsg()
		c.write(line("REQ " + m.id + " 99999999999"))
		c.expectAlive()
		eventually(t, ioTimeout, "DeferredCount 1", func() bool { return ch.DeferredCount() == 1 })
		c.expectSilence(quiet)
	})

	t.Run("D-TCP-53 D-INFL-02 Q-14 msg_timeout redelivers with attempts 2", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "tmo", "c", `{"msg_timeout":1000}`, 1)
		ch := getChannel(t, n, "tmo", "c") // brand-new channel
		publish(t, addr, "tmo", "x")
		m := c.readMsg()
		start := time.Now()
		m2 := c.readMsgWithin(4 * time.Second)
		el := time.Since(start)
		if m2.id != m.id || m2.attempts != 2 {
			t.Fatalf("got %s attempts %d, want %s attempts 2", m2.id, m2.attempts, m.id)
		}
		if el < 900*time.Millisecond || el > 2500*time.Millisecond {
			t.Errorf("redelivered after %v, want ~1s (Q-14: on time on a new channel)", el)
		}
		if tc := ch.TimeoutCount(); tc != 1 {
			t.Errorf("TimeoutCount = %d, want 1", tc)
		}
		c.write(line("FIN " + m2.id))
		c.expectAlive()
		t.Logf("msg_timeout 1000 redelivered after %v", el.Round(time.Millisecond))
	})

	t.Run("D-TCP-37 D-INFL-03 TOUCH postpones the timeout", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "touch", "c", `{"msg_timeout":1000}`, 1)
		ch := getChannel(t, n, "touch", "c")
		publish(t, addr, "touch", "x")
		m := c.readMsg()
		for i := 0; i < 3; i++ { // 3 × 600 ms = 1.8 s, well past the 1 s timeout
			c.expectSilence(600 * time.Millisecond)
			c.write(line("TOUCH " + m.id))
		}
		c.write(line("FIN " + m.id))
		c.expectAlive() // no E_FIN_FAILED: still in flight
		if tc := ch.TimeoutCount(); tc != 0 {
			t.Errorf("TimeoutCount = %d, want 0", tc)
		}
	})

	t.Run("D-TCP-10 Q-23 in-flight of a dropped client waits for its timeout", func(t *testing.T) {
		t.Parallel()
		a := consumer(t, addr, "drop", "c", `{"msg_timeout":1000}`, 1)
		b := consumer(t, addr, "drop", "c", "", 0)
		publish(t, addr, "drop", "x")
		m := a.readMsg()
		start := time.Now()
		a.Close()
		b.rdy(1)
		m2 := b.readMsgWithin(4 * time.Second)
		el := time.Since(start)
		if m2.id != m.id || m2.attempts != 2 {
			t.Fatalf("got %s attempts %d, want %s attempts 2", m2.id, m2.attempts, m.id)
		}
		if el < 800*time.Millisecond {
			t.Errorf("requeued %v after the disconnect; the spec keeps it in flight until its 1s timeout", el)
		}
	})
}

// ---------------------------------------------------------------------------
// D-TCP-48, D-TCP-08, Q-13: heartbeats

func TestWireHeartbeats_DTCP48(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)
	c := dialV2(t, addr)
	c.write(identifyCmd(`{"heartbeat_interval":1000}`)) // no SUB: producers get them too
	c.expectResponse("OK")
	last := time.Now()
	for i := 0; i < 3; i++ {
		f, err := c.readFrameWithin(2 * time.Second)
		if err != nil {
			t.Fatalf("heartbeat %d: %v", i+1, err)
		}
		if string(f.raw) != string(wantFrame(frameTypeResponse, "_heartbeat_")) {
			t.Fatalf("heartbeat %d: got %v", i+1, f)
		}
		if gap := time.Since(last); gap < 600*time.Millisecond || gap > 1600*time.Millisecond {
			t.Errorf("heartbeat %d after %v, want ~1s", i+1, gap)
		}
		last = time.Now()
		c.write(line("NOP"))
	}
	// now stay silent: two missed heartbeats close the connection
	silentSince := time.Now()
	for {
		f, err := c.readFrameWithin(4 * time.Second)
		if err != nil {
			if !isClosedErr(err) {
				t.Fatalf("silent client not disconnected: %v", err)
			}
			break
		}
		if string(f.data) != "_heartbeat_" {
			t.Fatalf("unexpected frame %v", f)
		}
	}
	el := time.Since(silentSince)
	if el < 1500*time.Millisecond || el > 3500*time.Millisecond {
		t.Errorf("silent client closed after %v, want ~2s (2 × heartbeat_interval)", el)
	}
	t.Logf("silent client closed after %v", el.Round(time.Millisecond))
}

// D-TCP-48, Q-13, D-CLI-58: the default interval is client-timeout/2 and
// heartbeats run from connection time, before any IDENTIFY; -1 disables
// both heartbeats and the read deadline (D-TCP-14, D-TCP-08).
func TestWireHeartbeatsDefaultAndDisabled_DTCP48(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, func(o *nsqd.Options) { o.ClientTimeout = 2 * time.Second })

	t.Run("Q-13 heartbeats before IDENTIFY, close after 2 silent intervals", func(t *testing.T) {
		t.Parallel()
		c := dialV2(t, addr)
		start := time.Now()
		f, err := c.readFrameWithin(2 * time.Second)
		if err != nil {
			t.Fatalf("no heartbeat before IDENTIFY: %v", err)
		}
		if string(f.raw) != string(wantFrame(frameTypeResponse, "_heartbeat_")) {
			t.Fatalf("got %v", f)
		}
		if el := time.Since(start); el < 600*time.Millisecond || el > 1600*time.Millisecond {
			t.Errorf("first heartbeat after %v, want ~1s", el)
		}
		for {
			f, err := c.readFrameWithin(4 * time.Second)
			if err != nil {
				if !isClosedErr(err) {
					t.Fatalf("silent client not disconnected: %v", err)
				}
				break
			}
			if string(f.data) != "_heartbeat_" {
				t.Fatalf("unexpected %v", f)
			}
		}
		if el := time.Since(start); el < 1500*time.Millisecond || el > 3500*time.Millisecond {
			t.Errorf("closed after %v, want ~2s", el)
		}
	})

	t.Run("D-TCP-14 heartbeat_interval -1: no heartbeats, no read deadline", func(t *testing.T) {
		t.Parallel()
		c := dialV2(t, addr)
		c.write(identifyCmd(`{"heartbeat_interval":-1}`))
		c.expectResponse("OK")
		c.expectSilence(2500 * time.Millisecond) // > 2 × the 1s default
		c.expectAlive()
	})
}

// ---------------------------------------------------------------------------
// D-PAUSE-01/02

func TestWirePause_DPAUSE(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil)

	t.Run("D-PAUSE-02 paused channel delivers nothing until unpaused", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "pc", "c", "", 10)
		ch := getChannel(t, n, "pc", "c")
		if err := ch.Pause(); err != nil {
			t.Fatal(err)
		}
		if !ch.IsPaused() {
			t.Fatal("IsPaused false after Pause")
		}
		time.Sleep(50 * time.Millisecond) // let the client pump see the pause
		publish(t, addr, "pc", "x")
		c.expectSilence(quiet)
		if d := ch.Depth(); d != 1 {
			t.Errorf("paused channel depth = %d, want 1", d)
		}
		c.expectAlive() // client stays connected
		if err := ch.UnPause(); err != nil {
			t.Fatal(err)
		}
		if m := c.readMsg(); m.body != "x" {
			t.Fatalf("got %q", m.body)
		}
	})

	t.Run("D-PAUSE-01 paused topic keeps messages until unpaused", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "pt", "c", "", 10)
		tp, err := n.GetExistingTopic("pt")
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.Pause(); err != nil {
			t.Fatal(err)
		}
		if !tp.IsPaused() {
			t.Fatal("IsPaused false after Pause")
		}
		publish(t, addr, "pt", "x") // accepted with OK
		c.expectSilence(quiet)
		if d := tp.Depth(); d != 1 {
			t.Errorf("paused topic depth = %d, want 1", d)
		}
		if err := tp.UnPause(); err != nil {
			t.Fatal(err)
		}
		if m := c.readMsg(); m.body != "x" {
			t.Fatalf("got %q", m.body)
		}
	})
}

// ---------------------------------------------------------------------------
// D-EPH-01/02

func TestWireEphemeral_DEPH(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil)

	t.Run("D-EPH-02 ephemeral channel goes with its last client", func(t *testing.T) {
		t.Parallel()
		a := consumer(t, addr, "et", "c#ephemeral", "", 0)
		b := consumer(t, addr, "et", "c#ephemeral", "", 0)
		tp, err := n.GetExistingTopic("et")
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		ch := getChannel(t, n, "et", "c#ephemeral")
		eventually(t, ioTimeout, "client count 1", func() bool { return ch.ClientCount() == 1 })
		if _, err := tp.GetExistingChannel("c#ephemeral"); err != nil {
			t.Fatalf("channel deleted while a client remains: %v", err)
		}
		b.Close()
		eventually(t, ioTimeout, "ephemeral channel deleted", func() bool {
			_, err := tp.GetExistingChannel("c#ephemeral")
			return err != nil
		})
		if _, err := n.GetExistingTopic("et"); err != nil {
			t.Fatalf("a normal topic must survive its ephemeral channel: %v", err)
		}
	})

	t.Run("D-EPH-01 ephemeral topic goes with its last channel", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "e#ephemeral", "c#ephemeral", "", 0)
		if _, err := n.GetExistingTopic("e#ephemeral"); err != nil {
			t.Fatal(err)
		}
		c.Close()
		eventually(t, ioTimeout, "ephemeral topic deleted", func() bool {
			_, err := n.GetExistingTopic("e#ephemeral")
			return err != nil
		})
	})

	t.Run("D-EPH-01 ephemeral topic with a durable channel stays", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "e2#ephemeral", "durable", "", 0)
		tp, err := n.GetExistingTopic("e2#ephemeral")
		if err != nil {
			t.Fatal(err)
		}
		ch := getChannel(t, n, "e2#ephemeral", "durable")
		c.Close()
		eventually(t, ioTimeout, "client count 0", func() bool { return ch.ClientCount() == 0 })
		time.Sleep(quiet)
		if _, err := n.GetExistingTopic("e2#ephemeral"); err != nil {
			t.Fatalf("topic deleted although its channel is durable: %v", err)
		}
		if _, err := tp.GetExistingChannel("durable"); err != nil {
			t.Fatalf("durable channel deleted on disconnect: %v", err)
		}
	})
}

// D-INFL-03: TOUCH never extends past first delivery + --max-msg-timeout.
func TestWireTouchCap_DINFL03(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, func(o *nsqd.Options) {
		o.MaxMsgTimeout = 1500 * time.Millisecond
		o.QueueScanInterval = 20 * time.Millisecond
	})
	c := consumer(t, addr, "tcap", "c", `{"msg_timeout":1000}`, 1)
	ch := getChannel(t, n, "tcap", "c")
	publish(t, addr, "tcap", "x")
	m := c.readMsg()
	start := time.Now()
	for i := 0; i < 2; i++ { // TOUCH at ~0.6 s and ~1.2 s: uncapped deadline would be ~2.2 s
		c.expectSilence(600 * time.Millisecond)
		c.write(line("TOUCH " + m.id))
	}
	m2 := c.readMsgWithin(3 * time.Second)
	el := time.Since(start)
	if m2.id != m.id || m2.attempts != 2 {
		t.Fatalf("got %s attempts %d, want %s attempts 2", m2.id, m2.attempts, m.id)
	}
	if el < 1300*time.Millisecond || el > 2000*time.Millisecond {
		t.Errorf("touched message timed out after %v, want ~1.5s (capped by --max-msg-timeout)", el)
	}
	if tc := ch.TimeoutCount(); tc != 1 {
		t.Errorf("TimeoutCount = %d, want 1", tc)
	}
	t.Logf("capped TOUCH timed out after %v", el.Round(time.Millisecond))
}

// D-TCP-50: message frames are buffered; they go out when the client
// becomes not-ready, or when the output_buffer_timeout ticker fires.
func TestWireOutputBuffering_DTCP50(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)

	t.Run("D-TCP-50 not-ready flushes at once", func(t *testing.T) {
		t.Parallel()
		c := consumer(t, addr, "obuf1", "c", `{"output_buffer_timeout":5000}`, 1)
		start := time.Now()
		publish(t, addr, "obuf1", "x")
		c.readMsgWithin(time.Second)
		t.Logf("RDY 1 (not ready after send): message after %v", time.Since(start).Round(time.Millisecond))
	})
	// NSQ writes each frame's parts with len >= 4 through a 1-byte bufio
	// buffer, so nothing is ever held back, whatever the body length.
	for _, body := range []string{"x", "xy", strings.Repeat("z", 100)} {
		t.Run(fmt.Sprintf("D-TCP-16 output_buffer_size -1 is unbuffered (%d-byte body)", len(body)), func(t *testing.T) {
			t.Parallel()
			topic := fmt.Sprintf("obuf2_%d", len(body))
			c := consumer(t, addr, topic, "c", `{"output_buffer_size":-1}`, 10)
			publish(t, addr, topic, body)
			f, err := c.readFrameWithin(time.Second)
			if err != nil {
				t.Fatalf("message with a %d-byte body not delivered within 1s on an unbuffered client: %v", len(body), err)
			}
			if m := parseMsg(t, f); m.body != body {
				t.Fatalf("body %q, want %q", m.body, body)
			}
		})
	}
	t.Run("D-TCP-50 still-ready client waits for the flush ticker", func(t *testing.T) {
		t.Parallel()
		// the ticker starts at IDENTIFY; we publish well before its first tick
		c := consumer(t, addr, "obuf3", "c", `{"output_buffer_timeout":1000}`, 10)
		start := time.Now()
		publish(t, addr, "obuf3", "x")
		c.readMsgWithin(3 * time.Second)
		el := time.Since(start)
		if el < 500*time.Millisecond {
			t.Errorf("buffered message arrived after %v, before the 1s output_buffer_timeout", el)
		}
		t.Logf("RDY 10 (still ready): message after %v", el.Round(time.Millisecond))
	})
}

// TestWirePipelinedFINs: FINs sent in one write are applied together
// (pump_batch.go), and still exactly as if one by one: in order, each
// failure answered on its own, every FIN applied before a later command
// runs (so a TOUCH or REQ of a FINed message fails), and more FINs than
// one batch holds all count.
func TestWirePipelinedFINs(t *testing.T) {
	t.Parallel()
	n, addr := startNSQD(t, nil)
	const total = 150
	bodies := make([]string, total)
	for i := range bodies {
		bodies[i] = "m" + strconv.Itoa(i)
	}
	publish(t, addr, "pfin", bodies...)
	c := consumer(t, addr, "pfin", "c", "", total)
	ch := getChannel(t, n, "pfin", "c")
	ids := make([]string, total)
	for i := range ids {
		ids[i] = c.readMsg().id
	}
	eventually(t, ioTimeout, "all in flight", func() bool { return ch.InFlightCount() == total })

	// 0..129 in one write, with two unknown IDs and a repeat in between,
	// then a TOUCH and a REQ of messages FINed in the same write
	var w []byte
	for i := 0; i < 130; i++ {
		w = append(w, line("FIN "+ids[i])...)
		switch i {
		case 10:
			w = append(w, line("FIN 0000000000000bad")...)
		case 70:
			w = append(w, line("FIN "+ids[3])...) // already FINed above
		case 100:
			w = append(w, line("FIN 0000000000000bae")...)
		}
	}
	w = append(w, line("TOUCH "+ids[129])...)
	w = append(w, line("REQ "+ids[128]+" 0")...)
	c.write(w)
	c.expectError("E_FIN_FAILED FIN 0000000000000bad failed ID not in flight")
	c.expectError("E_FIN_FAILED FIN " + ids[3] + " failed ID not in flight")
	c.expectError("E_FIN_FAILED FIN 0000000000000bae failed ID not in flight")
	c.expectError("E_TOUCH_FAILED TOUCH " + ids[129] + " failed ID not in flight")
	c.expectError("E_REQ_FAILED REQ " + ids[128] + " failed ID not in flight")
	if got := ch.InFlightCount(); got != total-130 {
		t.Fatalf("in flight after 130 FINs = %d, want %d", got, total-130)
	}

	// the rest, the last one followed by nothing: applied before nsqd
	// waits for more, without any other command to push them
	w = w[:0]
	for i := 130; i < total; i++ {
		w = append(w, line("FIN "+ids[i])...)
	}
	c.write(w)
	eventually(t, ioTimeout, "all finished", func() bool { return ch.InFlightCount() == 0 })
	c.expectSilence(quiet)
	if ch.Depth() != 0 || ch.RequeueCount() != 0 {
		t.Fatalf("depth %d, requeued %d after FINs of every message", ch.Depth(), ch.RequeueCount())
	}
}

// A response held back because more input was buffered still goes out
// when that input is only part of the next command: nsqd is about to wait
// for the rest, and the client may be waiting for the answer first.
func TestWireResponseNotHeldBehindAPartialLine(t *testing.T) {
	t.Parallel()
	_, addr := startNSQD(t, nil)
	c := dialV2(t, addr)
	c.write(cat(pubCmd("partial", []byte("x")), []byte("NO")))
	f, err := c.readFrameWithin(2 * time.Second)
	if err != nil {
		t.Fatalf("no answer to a PUB followed by half a command: %v", err)
	}
	if string(f.raw) != string(wantFrame(frameTypeResponse, "OK")) {
		t.Fatalf("got %v, want OK", f)
	}
	c.write([]byte("P\n"))
	c.write(pubCmd("partial", []byte("y")))
	c.expectResponse("OK")
}
