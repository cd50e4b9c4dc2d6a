package nsqd_test

// TLS for nsqd: the IDENTIFY tls_v1 upgrade, client-certificate policies,
// --tls-min-version, --tls-required on TCP and HTTP, the HTTPS listener,
// TLS fields in /stats and the start-up validation. Spec rows: D-TCP-21,
// D-TCP-25, D-TCP-27, D-TLS-01..03, D-CLI-10, D-CLI-48..53, D-CLI-59,
// D-HTTP-09/10, D-HTTP-21, D-ERR-03, D-ERR-16. See
// docs/conformance-nsqd-tls.md.
//
// Helpers shared with compression_test.go carry the prefix "tl"; the raw
// frame builders (identifyCmd, pubCmd, line, ...) and startNSQD come from
// wire_helpers_test.go.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/nsqd"
)

// ---------------------------------------------------------------------------
// certificates

// tlPKI is a throw-away CA with a server certificate (for 127.0.0.1 and
// localhost) written to files for nsqd, and two client certificates: one
// issued by the CA and a self-signed "rogue" one.
type tlPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
	rogue                     tls.Certificate
}

func tlNewPKI(t testing.TB) *tlPKI {
	t.Helper()
	dir := t.TempDir()
	caKey := tlKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nsqd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &tlPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.caFile = tlWritePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	srvKey := tlKey(t)
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "nsqd"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.certFile = tlWritePEM(t, dir, "server.pem", "CERTIFICATE", srvDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p.keyFile = tlWritePEM(t, dir, "server.key", "PRIVATE KEY", keyDER)

	clientTmpl := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
	}
	cliKey := tlKey(t)
	cliDER, err := x509.CreateCertificate(rand.Reader, clientTmpl(3, "good client"), caCert, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.client = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}

	rogueKey := tlKey(t)
	rogueTmpl := clientTmpl(4, "rogue client")
	rogueDER, err := x509.CreateCertificate(rand.Reader, rogueTmpl, rogueTmpl, &rogueKey.PublicKey, rogueKey)
	if err != nil {
		t.Fatal(err)
	}
	p.rogue = tls.Certificate{Certificate: [][]byte{rogueDER}, PrivateKey: rogueKey}
	return p
}

func tlKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tlWritePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	fn := filepath.Join(dir, name)
	if err := os.WriteFile(fn, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0600); err != nil {
		t.Fatal(err)
	}
	return fn
}

// serverOpts turns TLS on in nsqd's options.
func (p *tlPKI) serverOpts(o *nsqd.Options) {
	o.TLSCert = p.certFile
	o.TLSKey = p.keyFile
}

// clientConfig trusts the test CA; certs are the client certificates to
// offer.
func (p *tlPKI) clientConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1", Certificates: certs}
}

// ---------------------------------------------------------------------------
// nsqd with a capturing logger

// tlLogger forwards nsqd's log lines to t.Log while the test runs and keeps
// them for assertions.
type tlLogger struct {
	mu    sync.Mutex
	t     testing.TB
	done  bool
	lines []string
}

func (l *tlLogger) Output(_ int, s string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if !l.done {
		l.t.Log(s)
	}
	return nil
}

func (l *tlLogger) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func tlLoggerFor(t testing.TB) *tlLogger {
	l := &tlLogger{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

// tlStart runs an nsqd (startNSQD: loopback, port 0, temp data path) with a
// capturing logger.
func tlStart(t testing.TB, mod func(*nsqd.Options)) (*nsqd.NSQD, string, *tlLogger) {
	t.Helper()
	l := tlLoggerFor(t)
	n, addr := startNSQD(t, func(o *nsqd.Options) {
		o.Logger = l
		o.LogLevel = lg.INFO
		if mod != nil {
			mod(o)
		}
	})
	return n, addr, l
}

// tlNewFails runs nsqd.New and returns its error (nil if it started, in
// which case it is shut down again).
func tlNewFails(t testing.TB, mod func(*nsqd.Options)) error {
	t.Helper()
	o := nsqd.NewOptions()
	o.TCPAddress = "127.0.0.1:0"
	o.HTTPAddress = "127.0.0.1:0"
	o.HTTPSAddress = "127.0.0.1:0"
	o.DataPath = t.TempDir()
	o.Logger = tlLoggerFor(t)
	mod(o)
	n, err := nsqd.New(o)
	if err == nil {
		n.Exit()
	}
	return err
}

// ---------------------------------------------------------------------------
// raw V2 stream over any (possibly upgraded) reader/writer pair

type tlStream struct {
	t     testing.TB
	conn  net.Conn // the socket, for deadlines
	r     io.Reader
	w     io.Writer
	flush func() error // nil: writes go straight out
}

// tlDial connects, sends the magic and returns a plain stream. br is the
// buffered reader the stream reads through.
func tlDial(t testing.TB, addr string) (*tlStream, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	br := bufio.NewReader(c)
	s := &tlStream{t: t, conn: c, r: br, w: c}
	s.send([]byte("  V2"))
	return s, br
}

func (s *tlStream) send(b []byte) {
	s.t.Helper()
	s.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := s.w.Write(b); err != nil {
		s.t.Fatalf("write %q: %v", b, err)
	}
	if s.flush != nil {
		if err := s.flush(); err != nil {
			s.t.Fatalf("flush: %v", err)
		}
	}
}

func (s *tlStream) readFrameErr() (int32, []byte, error) {
	s.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	var hdr [4]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size < 4 || size > 16<<20 {
		return 0, nil, fmt.Errorf("implausible frame size %d (% x)", size, hdr)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(s.r, body); err != nil {
		return 0, nil, err
	}
	return int32(binary.BigEndian.Uint32(body[:4])), body[4:], nil
}

func (s *tlStream) readFrame() (int32, []byte) {
	s.t.Helper()
	typ, data, err := s.readFrameErr()
	if err != nil {
		s.t.Fatalf("reading frame: %v", err)
	}
	return typ, data
}

func (s *tlStream) expect(typ int32, want string) {
	s.t.Helper()
	gotTyp, data := s.readFrame()
	if gotTyp != typ || string(data) != want {
		s.t.Fatalf("want frame type %d %q, got type %d %q", typ, want, gotTyp, data)
	}
}

// expectClosed: nothing more arrives and the server closes the stream.
func (s *tlStream) expectClosed() {
	s.t.Helper()
	s.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(s.r)
	if len(b) > 0 {
		s.t.Fatalf("want connection closed, got %q", b)
	}
	if err != nil && !isClosedErr(err) {
		s.t.Fatalf("want connection closed, got %v", err)
	}
}

// identifyResp is the negotiated IDENTIFY answer (D-TCP-20).
type identifyResp struct {
	TLSv1           bool `json:"tls_v1"`
	Deflate         bool `json:"deflate"`
	DeflateLevel    int  `json:"deflate_level"`
	MaxDeflateLevel int  `json:"max_deflate_level"`
	Snappy          bool `json:"snappy"`
}

// identify sends IDENTIFY and decodes the JSON response.
func (s *tlStream) identify(js string) identifyResp {
	s.t.Helper()
	s.send(identifyCmd(js))
	typ, data := s.readFrame()
	var r identifyResp
	if typ != frameTypeResponse || json.Unmarshal(data, &r) != nil {
		s.t.Fatalf("IDENTIFY %s: got type %d %q", js, typ, data)
	}
	return r
}

// upgradeTLS performs the client side of the tls_v1 upgrade on a plain
// stream whose JSON response has been read; it returns the TLS stream
// after checking the OK sent through it (D-TCP-21).
func (s *tlStream) upgradeTLS(br *bufio.Reader, cfg *tls.Config) (*tlStream, *tls.Conn) {
	s.t.Helper()
	if br.Buffered() != 0 {
		s.t.Fatalf("%d bytes arrived before the TLS handshake", br.Buffered())
	}
	tc := tls.Client(s.conn, cfg)
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		s.t.Fatalf("TLS handshake: %v", err)
	}
	ts := &tlStream{t: s.t, conn: s.conn, r: bufio.NewReader(tc), w: tc}
	ts.expect(frameTypeResponse, "OK")
	return ts, tc
}

// ---------------------------------------------------------------------------
// go-nsq round trip

// tlRoundTrip publishes n messages (half PUB, half MPUB) with a go-nsq
// Producer and consumes them with a go-nsq Consumer, both configured by
// cfgMod, and checks every message arrives exactly once. check, if set, runs
// while both are still connected.
func tlRoundTrip(t *testing.T, addr, topic string, n, size int, cfgMod func(*nsq.Config), check func()) {
	t.Helper()
	newCfg := func() *nsq.Config {
		cfg := nsq.NewConfig()
		cfg.MaxInFlight = 200
		cfg.DialTimeout = 2 * time.Second
		// go-nsq's 1 s default: under -race on a busy 2-vCPU machine a
		// 200 KB TLS+deflate PUB can take longer to be read (CI failure)
		cfg.WriteTimeout = 10 * time.Second
		cfgMod(cfg)
		return cfg
	}
	bodies := make([]string, n)
	for i := range bodies {
		prefix := fmt.Sprintf("%s-%05d-", topic, i)
		bodies[i] = prefix + strings.Repeat("x", max(size-len(prefix), 0))
	}

	p, err := nsq.NewProducer(addr, newCfg())
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	p.SetLogger(newCLLogger(t, "producer: "), nsq.LogLevelWarning)
	defer p.Stop()
	half := n / 2
	for _, b := range bodies[:half] {
		if err := p.Publish(topic, []byte(b)); err != nil {
			t.Fatalf("PUB: %v", err)
		}
	}
	for i := half; i < n; i += 100 {
		var batch [][]byte
		for _, b := range bodies[i:min(i+100, n)] {
			batch = append(batch, []byte(b))
		}
		if err := p.MultiPublish(topic, batch); err != nil {
			t.Fatalf("MPUB: %v", err)
		}
	}

	var mu sync.Mutex
	got := make(map[string]int)
	c, err := nsq.NewConsumer(topic, "ch", newCfg())
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	c.SetLogger(newCLLogger(t, "consumer: "), nsq.LogLevelWarning)
	c.AddHandler(nsq.HandlerFunc(func(m *nsq.Message) error {
		mu.Lock()
		got[string(m.Body)]++
		mu.Unlock()
		return nil
	}))
	if err := c.ConnectToNSQD(addr); err != nil {
		t.Fatalf("ConnectToNSQD: %v", err)
	}
	defer func() {
		c.Stop()
		select {
		case <-c.StopChan:
		case <-time.After(10 * time.Second):
			t.Errorf("consumer did not stop")
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		have := len(got)
		mu.Unlock()
		if have == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages", have, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	for _, b := range bodies {
		if got[b] != 1 {
			t.Errorf("message %.20q delivered %d times", b, got[b])
		}
	}
	mu.Unlock()
	if check != nil {
		check()
	}
}

// tlConsumerStats returns the stats of the only client of topic/ch.
func tlConsumerStats(t testing.TB, n *nsqd.NSQD, topic string) nsqd.ClientStats {
	t.Helper()
	for _, ts := range n.GetStats(topic, "ch", true) {
		for _, cs := range ts.Channels {
			if len(cs.Clients) == 1 {
				return cs.Clients[0]
			}
		}
	}
	t.Fatalf("no single client on %s/ch", topic)
	return nsqd.ClientStats{}
}

// ---------------------------------------------------------------------------
// tests

// D-TCP-21, D-TLS-01, D-TLS-03, D-HTTP-21: go-nsq producer and consumer over
// TLS (Go negotiates TLS 1.3), 1,000 messages, TLS fields in /stats.
func TestTLSGoNSQ(t *testing.T) {
	pki := tlNewPKI(t)
	n, addr, _ := tlStart(t, pki.serverOpts)
	tlRoundTrip(t, addr, "tls_gonsq", 1000, 64, func(cfg *nsq.Config) {
		cfg.TlsV1 = true
		cfg.TlsConfig = pki.clientConfig()
	}, func() {
		cs := tlConsumerStats(t, n, "tls_gonsq")
		if !cs.TLS || cs.TLSVersion != "TLS1.3" || !strings.HasPrefix(cs.CipherSuite, "Unknown ") ||
			cs.TLSNegotiatedProto != "" || !cs.TLSNegotiatedMutual || cs.Snappy || cs.Deflate {
			t.Errorf("consumer stats: %+v", cs)
		}
		ps := n.GetProducerStats("tls_gonsq")
		if len(ps) != 1 || !ps[0].TLS || ps[0].TLSVersion != "TLS1.3" {
			t.Errorf("producer stats: %+v", ps)
		}
	})
}

// D-TCP-21, D-TLS-03: a TLS 1.2 client over a raw connection: JSON in
// plaintext, handshake, OK over TLS; stats name the classic cipher suite.
// Before the upgrade the stats show no TLS.
func TestTLSRawUpgradeTLS12(t *testing.T) {
	pki := tlNewPKI(t)
	n, addr, _ := tlStart(t, pki.serverOpts)

	s, br := tlDial(t, addr)
	if r := s.identify(`{"feature_negotiation":true,"tls_v1":true}`); !r.TLSv1 || r.Snappy || r.Deflate {
		t.Fatalf("IDENTIFY response %+v, want tls_v1 only", r)
	}
	cfg := pki.clientConfig()
	cfg.MaxVersion = tls.VersionTLS12
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	ts, tc := s.upgradeTLS(br, cfg)
	if v := tc.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("negotiated %x", v)
	}
	ts.send(line("SUB tls12 ch"))
	ts.expect(frameTypeResponse, "OK")
	ts.send(line("RDY 1"))
	ts.send(pubCmd("tls12", []byte("hello")))
	ts.expect(frameTypeResponse, "OK")
	typ, data := ts.readFrame()
	if typ != frameTypeMessage || !strings.HasSuffix(string(data), "hello") {
		t.Fatalf("want message hello, got type %d %q", typ, data)
	}

	cs := tlConsumerStats(t, n, "tls12")
	if !cs.TLS || cs.TLSVersion != "TLS1.2" || cs.CipherSuite != "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" ||
		cs.TLSNegotiatedProto != "" || !cs.TLSNegotiatedMutual {
		t.Errorf("stats: %+v", cs)
	}

	// a plaintext consumer: no TLS fields
	p, _ := tlDial(t, addr)
	p.send(line("SUB tls12 ch2"))
	p.expect(frameTypeResponse, "OK")
	for _, ts := range n.GetStats("tls12", "ch2", true) {
		for _, ch := range ts.Channels {
			for _, c := range ch.Clients {
				if c.TLS || c.TLSVersion != "" || c.CipherSuite != "" {
					t.Errorf("plaintext client stats: %+v", c)
				}
			}
		}
	}
}

// D-TCP-21: without a TLS config tls_v1 is answered false and the stream
// stays plaintext; --https-address is not bound (D-CLI-10).
func TestTLSNotConfigured(t *testing.T) {
	n, addr, _ := tlStart(t, nil)
	if n.RealHTTPSAddr() != nil {
		t.Errorf("HTTPS listener bound without a TLS config: %v", n.RealHTTPSAddr())
	}
	s, _ := tlDial(t, addr)
	if r := s.identify(`{"feature_negotiation":true,"tls_v1":true}`); r.TLSv1 {
		t.Fatalf("tls_v1 granted without a TLS config: %+v", r)
	}
	s.send(pubCmd("plain", []byte("x")))
	s.expect(frameTypeResponse, "OK")
}

// D-TCP-21, D-ERR-16: a handshake failure is fatal with E_IDENTIFY_FAILED
// IDENTIFY failed <err>, written on the plain socket.
func TestTLSHandshakeFailure(t *testing.T) {
	pki := tlNewPKI(t)
	_, addr, _ := tlStart(t, pki.serverOpts)
	s, _ := tlDial(t, addr)
	s.identify(`{"feature_negotiation":true,"tls_v1":true}`)
	s.send([]byte("GET / HTTP/1.0\r\n\r\n"))
	typ, data := s.readFrame()
	if typ != frameTypeError || !strings.HasPrefix(string(data), "E_IDENTIFY_FAILED IDENTIFY failed tls: ") {
		t.Fatalf("got type %d %q", typ, data)
	}
	s.expectClosed()
}

// D-TCP-21: the server-side handshake has a 5 s deadline.
func TestTLSHandshakeTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 5s")
	}
	pki := tlNewPKI(t)
	_, addr, _ := tlStart(t, pki.serverOpts)
	s, _ := tlDial(t, addr)
	s.identify(`{"feature_negotiation":true,"tls_v1":true}`)
	start := time.Now()
	// the error frame (plaintext) arrives when the deadline fires
	s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, data, err := func() (int32, []byte, error) {
		var hdr [8]byte
		if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
			return 0, nil, err
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
		_, err := io.ReadFull(s.r, body)
		return int32(binary.BigEndian.Uint32(hdr[4:])), body, err
	}()
	elapsed := time.Since(start)
	if err != nil || typ != frameTypeError || !strings.HasPrefix(string(data), "E_IDENTIFY_FAILED IDENTIFY failed ") {
		t.Fatalf("got type %d %q, %v", typ, data, err)
	}
	if elapsed < 4*time.Second || elapsed > 8*time.Second {
		t.Errorf("handshake given up after %v, want ~5s", elapsed)
	}
}

// D-CLI-50, D-TLS-01: --tls-client-auth-policy require (any certificate)
// and require-verify (certificate issued by --tls-root-ca-file), each with a
// go-nsq round trip of 1,000 messages and refused clients.
func TestTLSClientAuthPolicies(t *testing.T) {
	pki := tlNewPKI(t)
	for _, tc := range []struct {
		policy    string
		rogueOK   bool
		withRoots bool
	}{
		{"require", true, false},
		{"require-verify", false, true},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			n, addr, logs := tlStart(t, func(o *nsqd.Options) {
				pki.serverOpts(o)
				o.TLSClientAuthPolicy = tc.policy
				if tc.withRoots {
					o.TLSRootCAFile = pki.caFile
				}
			})
			// a client-auth policy forces --tls-required (D-CLI-50)
			s, _ := tlDial(t, addr)
			s.send(line("NOP"))
			s.expect(frameTypeError, "E_INVALID cannot NOP in current state (TLS required)")

			topic := "auth_" + strings.ReplaceAll(tc.policy, "-", "_")
			tlRoundTrip(t, addr, topic, 1000, 32, func(cfg *nsq.Config) {
				cfg.TlsV1 = true
				cfg.TlsConfig = pki.clientConfig(pki.client)
			}, func() {
				if cs := tlConsumerStats(t, n, topic); !cs.TLS {
					t.Errorf("stats: %+v", cs)
				}
			})

			publish := func(certs ...tls.Certificate) error {
				cfg := nsq.NewConfig()
				cfg.TlsV1 = true
				cfg.TlsConfig = pki.clientConfig(certs...)
				cfg.DialTimeout = 2 * time.Second
				p, err := nsq.NewProducer(addr, cfg)
				if err != nil {
					t.Fatal(err)
				}
				p.SetLogger(newCLLogger(t, "producer: "), nsq.LogLevelError)
				defer p.Stop()
				return p.Publish(topic, []byte("x"))
			}
			if err := publish(); err == nil {
				t.Errorf("publish without a client certificate succeeded")
			}
			err := publish(pki.rogue)
			if tc.rogueOK && err != nil {
				t.Errorf("publish with a self-signed certificate: %v", err)
			}
			if !tc.rogueOK && err == nil {
				t.Errorf("publish with a certificate from an unknown CA succeeded")
			}
			if !logs.has("E_IDENTIFY_FAILED IDENTIFY failed ") {
				t.Errorf("no E_IDENTIFY_FAILED logged for the refused clients")
			}

			// the same policy guards HTTPS (D-HTTP-10)
			get := func(certs ...tls.Certificate) error {
				cl := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: pki.clientConfig(certs...)}}
				defer cl.CloseIdleConnections()
				resp, err := cl.Get("https://" + n.RealHTTPSAddr().String() + "/ping")
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			}
			if err := get(pki.client); err != nil {
				t.Errorf("HTTPS /ping with a good certificate: %v", err)
			}
			if err := get(); err == nil {
				t.Errorf("HTTPS /ping without a certificate succeeded")
			}
		})
	}
}

// D-CLI-53, D-TLS-01: --tls-min-version refuses older clients.
func TestTLSMinVersion(t *testing.T) {
	pki := tlNewPKI(t)
	_, addr, _ := tlStart(t, func(o *nsqd.Options) {
		pki.serverOpts(o)
		o.TLSMinVersion = tls.VersionTLS13
	})
	s, _ := tlDial(t, addr)
	s.identify(`{"feature_negotiation":true,"tls_v1":true}`)
	cfg := pki.clientConfig()
	cfg.MaxVersion = tls.VersionTLS12
	tc := tls.Client(s.conn, cfg)
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS 1.2 handshake accepted with --tls-min-version=tls1.3")
	}

	// TLS 1.3 is fine
	s2, br := tlDial(t, addr)
	s2.identify(`{"feature_negotiation":true,"tls_v1":true}`)
	ts, _ := s2.upgradeTLS(br, pki.clientConfig())
	ts.send(pubCmd("minver", []byte("x")))
	ts.expect(frameTypeResponse, "OK")
}

// D-TCP-27, D-ERR-03, D-TLS-02: with --tls-required (true or tcp-https)
// every command except IDENTIFY needs the TLS upgrade first.
func TestTLSRequiredTCP(t *testing.T) {
	pki := tlNewPKI(t)
	for _, level := range []int{nsqd.TLSRequiredExceptHTTP, nsqd.TLSRequired} {
		t.Run(fmt.Sprint("level", level), func(t *testing.T) {
			_, addr, _ := tlStart(t, func(o *nsqd.Options) {
				pki.serverOpts(o)
				o.TLSRequired = level
			})
			for _, cmd := range []struct{ send []byte }{
				{line("NOP")},
				{pubCmd("t", []byte("x"))},
				{line("SUB t c")},
				{line("RDY 1")},
				{line("CLS")},
				{cat(line("AUTH"), withBody([]byte("secret")))},
				{line("BOGUS")},
			} {
				name := strings.Fields(string(cmd.send))[0]
				s, _ := tlDial(t, addr)
				s.send(cmd.send)
				s.expect(frameTypeError, "E_INVALID cannot "+name+" in current state (TLS required)")
				s.expectClosed()
			}

			// IDENTIFY is allowed, without TLS too; what follows is not
			s, _ := tlDial(t, addr)
			s.identify(`{"feature_negotiation":true}`)
			s.send(line("NOP"))
			s.expect(frameTypeError, "E_INVALID cannot NOP in current state (TLS required)")
			s.expectClosed()

			// after the upgrade everything works
			s, br := tlDial(t, addr)
			s.identify(`{"feature_negotiation":true,"tls_v1":true}`)
			ts, _ := s.upgradeTLS(br, pki.clientConfig())
			ts.send(line("NOP"))
			ts.send(pubCmd("required", []byte("x")))
			ts.expect(frameTypeResponse, "OK")

			// and go-nsq with TLS works end to end
			tlRoundTrip(t, addr, "required_gonsq", 100, 16, func(cfg *nsq.Config) {
				cfg.TlsV1 = true
				cfg.TlsConfig = pki.clientConfig()
			}, nil)
		})
	}
}

// D-HTTP-09, D-HTTP-10, D-TLS-02, Q-20: --tls-required=true answers every
// plain HTTP request with 403 TLS_REQUIRED; tcp-https leaves plain HTTP
// alone; HTTPS always serves the API.
func TestTLSRequiredHTTP(t *testing.T) {
	pki := tlNewPKI(t)
	httpsClient := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: pki.clientConfig()}}
	defer httpsClient.CloseIdleConnections()
	plain := &http.Client{Timeout: ioTimeout}

	n, _, _ := tlStart(t, func(o *nsqd.Options) {
		pki.serverOpts(o)
		o.TLSRequired = nsqd.TLSRequired
	})
	httpsPort := n.RealHTTPSAddr().(*net.TCPAddr).Port
	want := fmt.Sprintf(`{"message": "TLS_REQUIRED", "https_port": %d}`, httpsPort)
	base := "http://" + n.RealHTTPAddr().String()
	for _, req := range []struct{ method, path string }{
		{"GET", "/ping"}, {"GET", "/info"}, {"POST", "/pub?topic=t"}, {"GET", "/nope"}, {"DELETE", "/stats"},
	} {
		r, _ := http.NewRequest(req.method, base+req.path, strings.NewReader("body"))
		resp, err := plain.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 403 || string(body) != want ||
			resp.Header.Get("X-NSQ-Content-Type") != "nsq; version=1.0" ||
			resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%s %s: %d %q %v", req.method, req.path, resp.StatusCode, body, resp.Header)
		}
	}
	resp, err := httpsClient.Get("https://" + n.RealHTTPSAddr().String() + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "OK" {
		t.Errorf("HTTPS /ping: %d %q", resp.StatusCode, body)
	}
	if len(n.GetStats("t", "", false)) != 0 {
		t.Errorf("the refused /pub created topic t")
	}

	// https_port is 0 without an HTTPS listener
	n2, _, _ := tlStart(t, func(o *nsqd.Options) {
		pki.serverOpts(o)
		o.TLSRequired = nsqd.TLSRequired
		o.HTTPSAddress = ""
	})
	resp, err = plain.Get("http://" + n2.RealHTTPAddr().String() + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || string(body) != `{"message": "TLS_REQUIRED", "https_port": 0}` {
		t.Errorf("no HTTPS listener: %d %q", resp.StatusCode, body)
	}

	// tcp-https: plain HTTP works
	n3, _, _ := tlStart(t, func(o *nsqd.Options) {
		pki.serverOpts(o)
		o.TLSRequired = nsqd.TLSRequiredExceptHTTP
	})
	resp, err = plain.Get("http://" + n3.RealHTTPAddr().String() + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "OK" {
		t.Errorf("tcp-https plain /ping: %d %q", resp.StatusCode, body)
	}
}

// D-CLI-10, D-HTTP-10: the HTTPS listener serves the same API as HTTP.
func TestHTTPSListener(t *testing.T) {
	pki := tlNewPKI(t)
	n, _, logs := tlStart(t, pki.serverOpts)
	if n.RealHTTPSAddr() == nil {
		t.Fatal("no HTTPS listener")
	}
	cl := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: pki.clientConfig()}}
	defer cl.CloseIdleConnections()
	base := "https://" + n.RealHTTPSAddr().String()
	for path, want := range map[string]string{"/ping": "OK", "/config/tls_required": "0"} {
		resp, err := cl.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	resp, err := cl.Post(base+"/pub?topic=over_https", "text/plain", strings.NewReader("m"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST /pub over HTTPS: %d", resp.StatusCode)
	}
	if !logs.has("HTTPS: listening on " + n.RealHTTPSAddr().String()) {
		t.Errorf("no HTTPS listening log line")
	}
}

// D-CLI-48..52, D-CLI-59: start-up validation messages and their order.
func TestTLSStartupValidation(t *testing.T) {
	pki := tlNewPKI(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	const noCert = "cannot require TLS client connections without TLS key and cert"
	for _, tc := range []struct {
		name string
		mod  func(*nsqd.Options)
		want string // exact, or prefix when it ends in "*"
	}{
		{"required without cert", func(o *nsqd.Options) { o.TLSRequired = nsqd.TLSRequired }, noCert},
		{"tcp-https without cert", func(o *nsqd.Options) { o.TLSRequired = nsqd.TLSRequiredExceptHTTP }, noCert},
		{"client auth policy forces tls-required", func(o *nsqd.Options) { o.TLSClientAuthPolicy = "require" }, noCert},
		{"unknown policy forces tls-required too", func(o *nsqd.Options) { o.TLSClientAuthPolicy = "bogus" }, noCert},
		{"missing cert file", func(o *nsqd.Options) {
			o.TLSCert = "/nonexistent/cert.pem"
			o.TLSKey = pki.keyFile
		}, "failed to build TLS config - open /nonexistent/cert.pem: *"},
		{"cert without key", func(o *nsqd.Options) { o.TLSCert = pki.certFile }, "failed to build TLS config - *"},
		{"unparsable root CA", func(o *nsqd.Options) {
			pki.serverOpts(o)
			o.TLSRootCAFile = garbage
		}, "failed to build TLS config - failed to append certificate to pool"},
		{"max-deflate-level before TLS", func(o *nsqd.Options) {
			o.MaxDeflateLevel = 10
			o.TLSRequired = nsqd.TLSRequired
		}, "--max-deflate-level must be [1,9]"},
		{"node-id before TLS", func(o *nsqd.Options) {
			o.ID = 5000
			o.TLSRequired = nsqd.TLSRequired
		}, "--node-id must be [0,1024)"},
		{"https listen", func(o *nsqd.Options) {
			pki.serverOpts(o)
			o.HTTPSAddress = busy.Addr().String()
		}, "listen (" + busy.Addr().String() + ") failed - *"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tlNewFails(t, tc.mod)
			if err == nil {
				t.Fatalf("started, want %q", tc.want)
			}
			if p, ok := strings.CutSuffix(tc.want, "*"); ok {
				if !strings.HasPrefix(err.Error(), p) {
					t.Fatalf("got %q, want prefix %q", err, p)
				}
			} else if err.Error() != tc.want {
				t.Fatalf("got %q, want %q", err, tc.want)
			}
		})
	}

	// with cert and key a policy turns tls-required on (level 2)
	o := nsqd.NewOptions()
	o.TCPAddress, o.HTTPAddress, o.HTTPSAddress = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.DataPath = t.TempDir()
	o.Logger = tlLoggerFor(t)
	pki.serverOpts(o)
	o.TLSClientAuthPolicy = "require"
	n, err := nsqd.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Exit()
	if o.TLSRequired != nsqd.TLSRequired {
		t.Errorf("tls_required = %d after a client auth policy, want %d", o.TLSRequired, nsqd.TLSRequired)
	}
}
