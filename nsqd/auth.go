package nsqd

// AUTH (D-TCP-28), the permission checks of SUB/PUB/MPUB/DPUB (D-TCP-29)
// and the client's auth state (D-AUTH-*). Querying the auth servers and
// matching permissions live in internal/auth.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ournsq/nsq/internal/auth"
	"github.com/ournsq/nsq/internal/lg"
)

// clientAuth is a connection's auth state, guarded by clientV2.metaLock.
// Only the IOLoop goroutine writes it; /stats reads it.
type clientAuth struct {
	// secret is the AUTH body, kept to re-query on expiry (D-AUTH-06)
	secret string
	// state is the last valid answer; nil before a successful AUTH
	state *auth.State
}

// authResponse is the AUTH success frame; field order is the key order
// (D-TCP-28).
type authResponse struct {
	Identity        string `json:"identity"`
	IdentityURL     string `json:"identity_url"`
	PermissionCount int    `json:"permission_count"`
}

// authEnabled: any --auth-http-address turns AUTH on (D-CLI-15).
func (n *NSQD) authEnabled() bool { return len(n.getOpts().AuthHTTPAddresses) > 0 }

// authHTTPClient holds the client used for auth servers. Without
// --tls-root-ca-file it is nsqd's outbound client; with it, a client of the
// same timeouts trusting those roots for https:// auth servers (D-AUTH-03).
type authHTTPClient struct {
	once   sync.Once
	client *http.Client
	err    error

	// every query runs under ctx, cancelled by Exit so that closing the
	// client connections does not wait for a slow auth server
	ctxOnce sync.Once
	ctx     context.Context
	cancel  context.CancelFunc
}

func (n *NSQD) authContext() context.Context {
	a := &n.authHTTP
	a.ctxOnce.Do(func() { a.ctx, a.cancel = context.WithCancel(context.Background()) })
	return a.ctx
}

// cancelAuthQueries aborts auth queries in flight and any later one.
func (n *NSQD) cancelAuthQueries() {
	n.authContext()
	n.authHTTP.cancel()
}

func (n *NSQD) authClient() (*http.Client, error) {
	a := &n.authHTTP
	a.once.Do(func() {
		opts := n.getOpts()
		if opts.TLSRootCAFile == "" {
			a.client = n.httpClient
			return
		}
		pem, err := os.ReadFile(opts.TLSRootCAFile)
		if err != nil {
			a.err = fmt.Errorf("failed to read TLS root CA file %s - %w", opts.TLSRootCAFile, err)
			return
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			a.err = fmt.Errorf("failed to load certificates from TLS root CA file %s", opts.TLSRootCAFile)
			return
		}
		a.client = newAuthHTTPClient(opts.HTTPClientConnectTimeout, opts.HTTPClientRequestTimeout,
			&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	})
	return a.client, a.err
}

// newAuthHTTPClient is newHTTPClient with a TLS configuration.
func newAuthHTTPClient(connectTimeout, requestTimeout time.Duration, tlsConfig *tls.Config) *http.Client {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   connectTimeout,
		ResponseHeaderTimeout: requestTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: requestTimeout}
}

// remoteIP is the client's IP without port; empty for unix sockets.
func (c *clientV2) remoteIP() string {
	addr := c.RemoteAddr()
	if addr == nil {
		return ""
	}
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	return host
}

// tlsState reports the client certificate's common name (empty without a
// peer certificate) and whether the connection is TLS, for the auth request
// (D-AUTH-01).
func (c *clientV2) tlsState() (commonName string, isTLS bool) {
	st := c.tlsConnState.Load()
	if st == nil {
		return "", false
	}
	if len(st.PeerCertificates) > 0 {
		commonName = st.PeerCertificates[0].Subject.CommonName
	}
	return commonName, true
}

// hasAuthorizations: a successful AUTH whose answer grants something.
func (c *clientV2) hasAuthorizations() bool {
	c.metaLock.RLock()
	defer c.metaLock.RUnlock()
	return c.auth.state != nil && len(c.auth.state.Authorizations) > 0
}

// queryAuthd asks the auth servers about secret and, on success, stores
// the answer (D-AUTH-01..04).
func (c *clientV2) queryAuthd(secret string) (*auth.State, error) {
	client, err := c.nsqd.authClient()
	if err != nil {
		return nil, err
	}
	opts := c.nsqd.getOpts()
	cn, isTLS := c.tlsState()
	req := auth.Request{
		CommonName: cn,
		RemoteIP:   c.remoteIP(),
		Secret:     secret,
		TLS:        isTLS,
	}
	state, err := auth.Query(c.nsqd.authContext(), client, opts.AuthHTTPAddresses, opts.AuthHTTPRequestMethod, req)
	if err != nil {
		return nil, err
	}
	c.metaLock.Lock()
	c.auth.secret = secret
	c.auth.state = state
	c.metaLock.Unlock()
	return state, nil
}

// isAuthorized checks topic/channel (channel "" for publishes) against the
// client's answer, re-querying first if its ttl ran out (D-AUTH-05, 06).
func (c *clientV2) isAuthorized(topic, channel string) (bool, error) {
	c.metaLock.RLock()
	state, secret := c.auth.state, c.auth.secret
	c.metaLock.RUnlock()
	if state == nil {
		return false, nil
	}
	if state.IsExpired() {
		var err error
		if state, err = c.queryAuthd(secret); err != nil {
			return false, err
		}
	}
	return state.IsAllowed(topic, channel), nil
}

// authStatsLocked fills the auth keys of /stats (D-AUTH-07); the caller
// holds metaLock.
func (c *clientV2) authStatsLocked() (authed bool, identity, identityURL string) {
	if c.auth.state == nil {
		return false, "", ""
	}
	return len(c.auth.state.Authorizations) > 0, c.auth.state.Identity, c.auth.state.IdentityURL
}

// authenticate runs AUTH once the body (the secret) is read; every error
// is fatal (D-TCP-28, D-ERR-20..24).
func (p *protocolV2) authenticate(c *clientV2, secret []byte) ([]byte, error) {
	if c.hasAuthorizations() {
		return nil, fatal("E_INVALID", "AUTH already set")
	}
	if !p.nsqd.authEnabled() {
		return nil, fatal("E_AUTH_DISABLED", "AUTH disabled")
	}
	state, err := c.queryAuthd(string(secret))
	if err != nil {
		p.nsqd.logf(lg.WARN, "PROTOCOL(V2): [%s] AUTH failed %s", c, err)
		return nil, fatal("E_AUTH_FAILED", "AUTH failed")
	}
	if len(state.Authorizations) == 0 {
		return nil, fatal("E_UNAUTHORIZED", "AUTH no authorizations found")
	}
	resp, err := json.Marshal(authResponse{
		Identity:        state.Identity,
		IdentityURL:     state.IdentityURL,
		PermissionCount: len(state.Authorizations),
	})
	if err != nil {
		return nil, fatal("E_AUTH_ERROR", "AUTH error %s", err)
	}
	if err := c.sendNow(frameTypeResponse, resp); err != nil {
		return nil, fatal("E_AUTH_ERROR", "AUTH error %s", err)
	}
	return nil, nil
}

// checkAuth guards SUB, PUB, MPUB and DPUB when auth is enabled (D-TCP-29):
// channel is "" for publishes. Every refusal is fatal.
func (p *protocolV2) checkAuth(c *clientV2, cmd, topic, channel string) error {
	if !p.nsqd.authEnabled() {
		return nil
	}
	if !c.hasAuthorizations() {
		return fatal("E_AUTH_FIRST", "AUTH required before %s", cmd)
	}
	ok, err := c.isAuthorized(topic, channel)
	if err != nil {
		p.nsqd.logf(lg.WARN, "PROTOCOL(V2): [%s] AUTH failed %s", c, err)
		return fatal("E_AUTH_FAILED", "AUTH failed")
	}
	if !ok {
		return fatal("E_UNAUTHORIZED", "AUTH failed for %s on %q %q", cmd, topic, channel)
	}
	return nil
}

// errAuthMethod is validateOptions' message for D-CLI-16.
var errAuthMethod = errors.New("--auth-http-request-method must be post or get")

// validateAuthOptions checks the auth options at start-up (D-CLI-16).
func validateAuthOptions(opts *Options) error {
	if opts.AuthHTTPRequestMethod != auth.MethodGet && opts.AuthHTTPRequestMethod != auth.MethodPost {
		return errAuthMethod
	}
	return nil
}
