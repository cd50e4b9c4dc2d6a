package nsqd_test

// snappy and deflate stream compression negotiated by IDENTIFY: D-TCP-20,
// D-TCP-22..25, D-CMP-01/02, D-CLI-54..56, D-HTTP-21, D-ERR-15. See
// docs/conformance-nsqd-tls.md. Helpers (tlStart, tlDial, tlStream,
// tlRoundTrip, ...) are in tls_test.go.

import (
	"bytes"
	"compress/flate"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/nsqd"
)

// snappyStreamID is the snappy framing format's stream identifier chunk.
var snappyStreamID = []byte{0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59}

// tlSnappyStream switches a stream whose JSON response has been read to
// snappy, checking the stream identifier comes first and the OK after it.
func tlSnappyStream(t testing.TB, s *tlStream, in io.Reader, out io.Writer) *tlStream {
	t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	id := make([]byte, len(snappyStreamID))
	if _, err := io.ReadFull(in, id); err != nil {
		t.Fatalf("reading snappy stream identifier: %v", err)
	}
	if !bytes.Equal(id, snappyStreamID) {
		t.Fatalf("first bytes after the JSON: % x, want % x", id, snappyStreamID)
	}
	w := snappy.NewBufferedWriter(out)
	t.Cleanup(func() { w.Close() })
	zs := &tlStream{t: t, conn: s.conn, r: snappy.NewReader(io.MultiReader(bytes.NewReader(id), in)), w: w, flush: w.Flush}
	zs.expect(frameTypeResponse, "OK")
	return zs
}

// tlDeflateStream switches a stream to raw DEFLATE (decoded with the
// standard library's inflater, RFC 1951 without zlib header) and checks OK.
func tlDeflateStream(t testing.TB, s *tlStream, in io.Reader, out io.Writer, level int) *tlStream {
	t.Helper()
	w, err := flate.NewWriter(out, level)
	if err != nil {
		t.Fatal(err)
	}
	zs := &tlStream{t: t, conn: s.conn, r: flate.NewReader(in), w: w, flush: w.Flush}
	zs.expect(frameTypeResponse, "OK")
	return zs
}

// tlExercise publishes, subscribes and receives one message on an
// (upgraded) stream.
func tlExercise(t testing.TB, s *tlStream, topic string) {
	t.Helper()
	s.send(line("NOP"))
	s.send(pubCmd(topic, []byte("one")))
	s.expect(frameTypeResponse, "OK")
	s.send(mpubCmd(topic, []byte("two"), []byte(strings.Repeat("three", 1000))))
	s.expect(frameTypeResponse, "OK")
	s.send(line("SUB " + topic + " ch"))
	s.expect(frameTypeResponse, "OK")
	s.send(line("RDY 10"))
	for _, want := range []string{"one", "two", strings.Repeat("three", 1000)} {
		typ, data := s.readFrame()
		if typ != frameTypeMessage || len(data) < 26 || string(data[26:]) != want {
			t.Fatalf("want message %.20q, got type %d %.40q", want, typ, data)
		}
		s.send(line("FIN " + string(data[10:26])))
	}
}

// D-TCP-22, D-CMP-02: after the JSON the server's stream starts with the
// snappy stream identifier, then OK in snappy; commands are snappy too.
func TestSnappyRaw(t *testing.T) {
	n, addr, _ := tlStart(t, nil)
	s, br := tlDial(t, addr)
	r := s.identify(`{"feature_negotiation":true,"snappy":true}`)
	if !r.Snappy || r.Deflate || r.TLSv1 {
		t.Fatalf("IDENTIFY response %+v, want snappy only", r)
	}
	zs := tlSnappyStream(t, s, br, s.conn)
	tlExercise(t, zs, "snappy_raw")
	if cs := tlConsumerStats(t, n, "snappy_raw"); !cs.Snappy || cs.Deflate || cs.TLS {
		t.Errorf("stats: %+v", cs)
	}
}

// D-TCP-23, D-CMP-01: raw DEFLATE both ways; OK decodes with a plain
// inflater; the granted level is the client's, capped at
// --max-deflate-level, 6 when the client gives none.
func TestDeflateRaw(t *testing.T) {
	for _, tc := range []struct {
		max, asked, want int
	}{
		{6, 1, 1},
		{6, 0, 6},
		{9, 9, 9},
		{9, 0, 6},
		{3, 9, 3},
		{3, 0, 3},
	} {
		t.Run(fmt.Sprintf("max%d_asked%d", tc.max, tc.asked), func(t *testing.T) {
			n, addr, _ := tlStart(t, func(o *nsqd.Options) { o.MaxDeflateLevel = tc.max })
			s, br := tlDial(t, addr)
			js := `{"feature_negotiation":true,"deflate":true}`
			if tc.asked > 0 {
				js = fmt.Sprintf(`{"feature_negotiation":true,"deflate":true,"deflate_level":%d}`, tc.asked)
			}
			r := s.identify(js)
			if !r.Deflate || r.Snappy || r.DeflateLevel != tc.want || r.MaxDeflateLevel != tc.max {
				t.Fatalf("IDENTIFY response %+v, want deflate level %d (max %d)", r, tc.want, tc.max)
			}
			zs := tlDeflateStream(t, s, br, s.conn, r.DeflateLevel)
			tlExercise(t, zs, "deflate_raw")
			if cs := tlConsumerStats(t, n, "deflate_raw"); !cs.Deflate || cs.Snappy {
				t.Errorf("stats: %+v", cs)
			}
		})
	}
}

// D-TCP-24, D-ERR-15: asking for both is fatal and no JSON is sent.
func TestCompressionBoth(t *testing.T) {
	_, addr, _ := tlStart(t, nil)
	s, _ := tlDial(t, addr)
	s.send(identifyCmd(`{"feature_negotiation":true,"snappy":true,"deflate":true}`))
	s.expect(frameTypeError, "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression")
	s.expectClosed()
}

// D-CLI-54, D-CLI-56: --deflate=false / --snappy=false refuse the feature;
// the stream stays plain. With only one of them off, asking for both grants
// the other one without the both-compressions error.
func TestCompressionDisabled(t *testing.T) {
	_, addr, _ := tlStart(t, func(o *nsqd.Options) {
		o.DeflateEnabled = false
		o.SnappyEnabled = false
	})
	s, _ := tlDial(t, addr)
	if r := s.identify(`{"feature_negotiation":true,"snappy":true,"deflate":true,"deflate_level":3}`); r.Snappy || r.Deflate || r.DeflateLevel != 6 {
		t.Fatalf("IDENTIFY response %+v, want no compression (deflate_level 6)", r)
	}
	tlExercise(t, s, "uncompressed")

	_, addr, _ = tlStart(t, func(o *nsqd.Options) { o.SnappyEnabled = false })
	s, br := tlDial(t, addr)
	r := s.identify(`{"feature_negotiation":true,"snappy":true,"deflate":true,"deflate_level":2}`)
	if r.Snappy || !r.Deflate || r.DeflateLevel != 2 {
		t.Fatalf("IDENTIFY response %+v, want deflate level 2 only", r)
	}
	tlExercise(t, tlDeflateStream(t, s, br, s.conn, 2), "deflate_only")
}

// D-TCP-19: without feature_negotiation nothing is upgraded.
func TestCompressionNeedsNegotiation(t *testing.T) {
	_, addr, _ := tlStart(t, nil)
	s, _ := tlDial(t, addr)
	s.send(identifyCmd(`{"snappy":true}`))
	s.expect(frameTypeResponse, "OK")
	tlExercise(t, s, "not_negotiated")
}

// D-TCP-25: TLS first, then the compression on top of TLS, each acked by
// its own OK.
func TestTLSThenSnappyRaw(t *testing.T) {
	pki := tlNewPKI(t)
	n, addr, _ := tlStart(t, pki.serverOpts)
	s, br := tlDial(t, addr)
	r := s.identify(`{"feature_negotiation":true,"tls_v1":true,"snappy":true}`)
	if !r.TLSv1 || !r.Snappy {
		t.Fatalf("IDENTIFY response %+v", r)
	}
	ts, tc := s.upgradeTLS(br, pki.clientConfig())
	zs := tlSnappyStream(t, ts, ts.r, tc)
	tlExercise(t, zs, "tls_snappy_raw")
	if cs := tlConsumerStats(t, n, "tls_snappy_raw"); !cs.Snappy || !cs.TLS {
		t.Errorf("stats: %+v", cs)
	}
}

func TestTLSThenDeflateRaw(t *testing.T) {
	pki := tlNewPKI(t)
	_, addr, _ := tlStart(t, pki.serverOpts)
	s, br := tlDial(t, addr)
	r := s.identify(`{"feature_negotiation":true,"tls_v1":true,"deflate":true,"deflate_level":4}`)
	if !r.TLSv1 || !r.Deflate || r.DeflateLevel != 4 {
		t.Fatalf("IDENTIFY response %+v", r)
	}
	ts, tc := s.upgradeTLS(br, pki.clientConfig())
	tlExercise(t, tlDeflateStream(t, ts, ts.r, tc, 4), "tls_deflate_raw")
}

// An unbuffered client (output_buffer_size -1, hence no flush timer)
// still gets every message at once through the compressor (D-TCP-16).
func TestCompressionUnbufferedClient(t *testing.T) {
	_, addr, _ := tlStart(t, nil)
	for _, kind := range []string{"snappy", "deflate"} {
		t.Run(kind, func(t *testing.T) {
			s, br := tlDial(t, addr)
			s.identify(`{"feature_negotiation":true,"` + kind + `":true,"output_buffer_size":-1}`)
			var zs *tlStream
			if kind == "snappy" {
				zs = tlSnappyStream(t, s, br, s.conn)
			} else {
				zs = tlDeflateStream(t, s, br, s.conn, 6)
			}
			topic := "unbuffered_" + kind
			zs.send(line("SUB " + topic + " ch"))
			zs.expect(frameTypeResponse, "OK")
			zs.send(line("RDY 100")) // stays ready: no readiness flush either
			publish(t, addr, topic, "m1", "m2")
			for _, want := range []string{"m1", "m2"} {
				typ, data := zs.readFrame()
				if typ != frameTypeMessage || string(data[26:]) != want {
					t.Fatalf("want %q, got type %d %q", want, typ, data)
				}
			}
		})
	}
}

// D-TCP-12 (our protection): a repeated IDENTIFY does not stack a second
// compression layer: the same feature is answered false and the stream
// stays as it is; the other one is the both-compressions error.
func TestCompressionRepeatedIdentify(t *testing.T) {
	_, addr, _ := tlStart(t, nil)
	s, br := tlDial(t, addr)
	s.identify(`{"feature_negotiation":true,"snappy":true}`)
	zs := tlSnappyStream(t, s, br, s.conn)
	zs.send(identifyCmd(`{"feature_negotiation":true,"snappy":true}`))
	typ, data := zs.readFrame()
	if typ != frameTypeResponse || !strings.Contains(string(data), `"snappy":false`) {
		t.Fatalf("second IDENTIFY: type %d %q", typ, data)
	}
	zs.send(pubCmd("again", []byte("x")))
	zs.expect(frameTypeResponse, "OK")
	zs.send(identifyCmd(`{"feature_negotiation":true,"deflate":true}`))
	zs.expect(frameTypeError, "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression")
}

// D-TCP-22, D-CMP-02, A-01: go-nsq with snappy, 1,000 messages.
func TestSnappyGoNSQ(t *testing.T) {
	n, addr, _ := tlStart(t, nil)
	tlRoundTrip(t, addr, "snappy_gonsq", 1000, 100, func(cfg *nsq.Config) { cfg.Snappy = true }, func() {
		if cs := tlConsumerStats(t, n, "snappy_gonsq"); !cs.Snappy || cs.Deflate {
			t.Errorf("stats: %+v", cs)
		}
		if ps := n.GetProducerStats("snappy_gonsq"); len(ps) != 1 || !ps[0].Snappy {
			t.Errorf("producer stats: %+v", ps)
		}
	})
}

// D-TCP-23, D-CMP-01, A-01: go-nsq with deflate at levels 1, 6 and 9, and 9
// capped to 3 by --max-deflate-level (go-nsq uses the level nsqd grants),
// 1,000 messages each.
func TestDeflateGoNSQ(t *testing.T) {
	for _, tc := range []struct{ level, max int }{{1, 9}, {6, 9}, {9, 9}, {9, 3}} {
		t.Run(fmt.Sprintf("level%d_max%d", tc.level, tc.max), func(t *testing.T) {
			n, addr, _ := tlStart(t, func(o *nsqd.Options) { o.MaxDeflateLevel = tc.max })
			topic := fmt.Sprintf("deflate_gonsq_%d_%d", tc.level, tc.max)
			tlRoundTrip(t, addr, topic, 1000, 100, func(cfg *nsq.Config) {
				cfg.Deflate = true
				cfg.DeflateLevel = tc.level
			}, func() {
				if cs := tlConsumerStats(t, n, topic); !cs.Deflate || cs.Snappy {
					t.Errorf("stats: %+v", cs)
				}
			})
		})
	}
}

// Messages larger than the output buffer go through the compressor without
// waiting in bufio; the flush timer must still push them out.
func TestCompressionLargeMessagesGoNSQ(t *testing.T) {
	pki := tlNewPKI(t)
	_, addr, _ := tlStart(t, pki.serverOpts)
	for name, mod := range map[string]func(*nsq.Config){
		"snappy":     func(cfg *nsq.Config) { cfg.Snappy = true },
		"deflate":    func(cfg *nsq.Config) { cfg.Deflate = true },
		"tls_snappy": func(cfg *nsq.Config) { cfg.Snappy = true; cfg.TlsV1 = true; cfg.TlsConfig = pki.clientConfig() },
		"tls_deflate": func(cfg *nsq.Config) {
			cfg.Deflate = true
			cfg.TlsV1 = true
			cfg.TlsConfig = &tls.Config{RootCAs: pki.pool}
		},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			tlRoundTrip(t, addr, "large_"+name, 20, 200*1024, mod, nil)
			// the flush timer (250ms) must do it, not a heartbeat (30s)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("20 large messages took %v", d)
			}
		})
	}
}

// D-TCP-25, A-01: go-nsq with TLS and a compression, 1,000 messages.
func TestTLSCompressionGoNSQ(t *testing.T) {
	pki := tlNewPKI(t)
	n, addr, _ := tlStart(t, pki.serverOpts)
	for _, kind := range []string{"snappy", "deflate"} {
		t.Run(kind, func(t *testing.T) {
			topic := "tls_" + kind + "_gonsq"
			tlRoundTrip(t, addr, topic, 1000, 100, func(cfg *nsq.Config) {
				cfg.TlsV1 = true
				cfg.TlsConfig = pki.clientConfig()
				cfg.Snappy = kind == "snappy"
				cfg.Deflate = kind == "deflate"
			}, func() {
				cs := tlConsumerStats(t, n, topic)
				if !cs.TLS || cs.Snappy != (kind == "snappy") || cs.Deflate != (kind == "deflate") {
					t.Errorf("stats: %+v", cs)
				}
			})
		})
	}
}
