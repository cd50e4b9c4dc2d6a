package nsqd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/ournsq/nsq/internal/httpapi"
	"github.com/ournsq/nsq/internal/protocol"
)

// TLS for nsqd (spec D-TLS-01..03, D-CLI-10, D-CLI-48..53, D-HTTP-09/10).
//
// One *tls.Config, built once in New and never modified afterwards, serves
// both the TCP `tls_v1` upgrade (client_upgrade.go) and the HTTPS listener.

// tlsListeners is embedded in NSQD. All fields are set in New and read-only
// afterwards.
type tlsListeners struct {
	tlsConfig     *tls.Config // nil without --tls-cert/--tls-key
	httpsListener net.Listener
	httpsServer   *httpapi.Server
}

// tlsHandshakeTimeout bounds the server-side handshake of a TCP upgrade
// (D-TCP-21).
const tlsHandshakeTimeout = 5 * time.Second

// tlsSettings applies the TLS start-up rules in NSQ's order (D-CLI-59): a
// client-auth policy forces tls-required on, then the TLS config is built,
// then a required level without a config is refused. It may set
// opts.TLSRequired, as NSQ does (visible in /config/tls_required).
// validateOptions calls it for the checks, New again for the config.
func tlsSettings(opts *Options) (*tls.Config, error) {
	if opts.TLSClientAuthPolicy != "" && opts.TLSRequired == TLSNotRequired {
		opts.TLSRequired = TLSRequired
	}
	cfg, err := buildTLSConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("failed to build TLS config - %w", err)
	}
	if cfg == nil && opts.TLSRequired != TLSNotRequired {
		return nil, errors.New("cannot require TLS client connections without TLS key and cert")
	}
	return cfg, nil
}

// buildTLSConfig returns nil when neither --tls-cert nor --tls-key is set
// (D-TLS-01). A single one of them fails loading the key pair.
func buildTLSConfig(opts *Options) (*tls.Config, error) {
	if opts.TLSCert == "" && opts.TLSKey == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
	if err != nil {
		return nil, err
	}

	// D-CLI-50: any other non-empty policy requests no client certificate
	clientAuth := tls.NoClientCert
	switch opts.TLSClientAuthPolicy {
	case "require":
		clientAuth = tls.RequireAnyClientCert
	case "require-verify":
		clientAuth = tls.RequireAndVerifyClientCert
	}

	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   clientAuth,
		MinVersion:   opts.TLSMinVersion,
	}
	if opts.TLSRootCAFile != "" {
		pool, err := loadCertPool(opts.TLSRootCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

// loadCertPool reads a PEM bundle (D-CLI-51).
func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("failed to append certificate to pool")
	}
	return pool, nil
}

// listenHTTPS builds the TLS config (checked before by validateOptions) and
// binds --https-address when there is one (D-CLI-10). The
// address is always TCP, never a unix socket.
func (n *NSQD) listenHTTPS(opts *Options) error {
	cfg, err := tlsSettings(opts)
	if err != nil {
		return err
	}
	n.tlsConfig = cfg
	if n.tlsConfig == nil || opts.HTTPSAddress == "" {
		return nil
	}
	ln, err := tls.Listen("tcp", opts.HTTPSAddress, n.tlsConfig)
	if err != nil {
		return fmt.Errorf("listen (%s) failed - %w", opts.HTTPSAddress, err)
	}
	n.httpsListener = ln
	return nil
}

// RealHTTPSAddr is the bound HTTPS address, nil when there is no HTTPS
// listener.
func (n *NSQD) RealHTTPSAddr() net.Addr {
	if n.httpsListener == nil {
		return nil
	}
	return n.httpsListener.Addr()
}

func (n *NSQD) httpsPort() int {
	if a, ok := n.RealHTTPSAddr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// plainHTTPHandler is what the plain HTTP listener serves: the API, or with
// --tls-required=true (level 2) a 403 for every request (D-HTTP-09). The
// HTTPS listener always gets the API (D-HTTP-10).
func (n *NSQD) plainHTTPHandler() http.Handler {
	if n.getOpts().TLSRequired == TLSRequired {
		return http.HandlerFunc(n.serveTLSRequired)
	}
	return newHTTPServer(n)
}

// serveTLSRequired writes NSQ's TLS_REQUIRED answer; the body keeps the
// spaces after the colons.
func (n *NSQD) serveTLSRequired(w http.ResponseWriter, req *http.Request) {
	body := `{"message": "TLS_REQUIRED", "https_port": ` + strconv.Itoa(n.httpsPort()) + `}`
	h := w.Header()
	h.Set("X-NSQ-Content-Type", "nsq; version=1.0")
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	w.Write([]byte(body))
}

// enforceTLSPolicy: with --tls-required true or tcp-https, every command but
// IDENTIFY needs a TLS upgrade first (D-TCP-27, D-ERR-03).
func (p *protocolV2) enforceTLSPolicy(c *clientV2, cmd []byte) error {
	if string(cmd) == "IDENTIFY" || p.nsqd.getOpts().TLSRequired == TLSNotRequired {
		return nil
	}
	if c.tlsConnState.Load() != nil {
		return nil
	}
	return protocol.NewFatal("E_INVALID", fmt.Sprintf("cannot %s in current state (TLS required)", cmd))
}

// tlsVersionName is the /stats tls_version (D-TLS-03).
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS1.0"
	case tls.VersionTLS11:
		return "TLS1.1"
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	}
	return "Unknown " + strconv.Itoa(int(v))
}

// namedCipherSuites are the only suites NSQ names in /stats: the RC4, 3DES,
// AES-CBC and ECDHE AES-128-GCM suites of TLS <= 1.2. Every other suite,
// TLS 1.3's included, is "Unknown <n>" (D-TLS-03).
var namedCipherSuites = map[uint16]bool{
	tls.TLS_RSA_WITH_RC4_128_SHA:                true,
	tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA:           true,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA:            true,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA:            true,
	tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA:        true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:    true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:    true,
	tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA:          true,
	tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA:     true,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:      true,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:      true,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:   true,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: true,
}

// cipherSuiteName is the /stats tls_cipher_suite (D-TLS-03).
func cipherSuiteName(id uint16) string {
	if namedCipherSuites[id] {
		return tls.CipherSuiteName(id)
	}
	return "Unknown " + strconv.Itoa(int(id))
}
