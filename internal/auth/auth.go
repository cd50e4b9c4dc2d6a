// Package auth queries NSQ auth servers and decides, from their answer,
// what a client may publish and subscribe to (spec D-AUTH-01..07).
//
// An auth server is asked, for a client secret, which topics and channels
// the client may use. Its answer (a State) holds regular expressions and is
// valid for ttl seconds; nsqd asks again once it expires.
package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Methods accepted by --auth-http-request-method (D-CLI-16).
const (
	MethodGet  = "get"
	MethodPost = "post"
)

// acceptHeader is what NSQ sends to every HTTP API it talks to (D-AUTH-01).
const acceptHeader = "application/vnd.nsq; version=1.0"

// MaxResponseSize bounds how much of an auth server's answer is read; a
// larger answer is an error (no client can tell: NSQ has no such cap, but an
// answer this big is not a sane authorization list).
const MaxResponseSize = 8 << 20

// Request is what an auth server is told about a client (D-AUTH-01).
type Request struct {
	// CommonName is the client certificate's subject CN under TLS with a
	// peer certificate, else empty.
	CommonName string
	// RemoteIP is the client's IP, empty for unix sockets.
	RemoteIP string
	// Secret is the AUTH body.
	Secret string
	// TLS tells whether the client connection is TLS.
	TLS bool
}

// values are the four parameters, for the GET query and the POST body.
func (r Request) values() url.Values {
	return url.Values{
		"common_name": {r.CommonName},
		"remote_ip":   {r.RemoteIP},
		"secret":      {r.Secret},
		"tls":         {strconv.FormatBool(r.TLS)},
	}
}

// Authorization is one entry of an auth answer: a topic regex, channel
// regexes and the permissions they grant (D-AUTH-03).
type Authorization struct {
	Topic       string   `json:"topic"`
	Channels    []string `json:"channels"`
	Permissions []string `json:"permissions"`

	topicRE    *regexp.Regexp
	channelREs []*regexp.Regexp
	subscribe  bool
	publish    bool
}

// compile validates the permissions and compiles the regexes; any failure
// rejects the whole answer (D-AUTH-03).
func (a *Authorization) compile() error {
	a.subscribe, a.publish = false, false
	for _, p := range a.Permissions {
		switch p {
		case "subscribe":
			a.subscribe = true
		case "publish":
			a.publish = true
		default:
			return fmt.Errorf("unknown permission %s", p)
		}
	}
	re, err := regexp.Compile(a.Topic)
	if err != nil {
		return fmt.Errorf("unable to compile topic %q %s", a.Topic, err)
	}
	a.topicRE = re
	a.channelREs = make([]*regexp.Regexp, 0, len(a.Channels))
	for _, ch := range a.Channels {
		re, err := regexp.Compile(ch)
		if err != nil {
			return fmt.Errorf("unable to compile channel %q %s", ch, err)
		}
		a.channelREs = append(a.channelREs, re)
	}
	return nil
}

// HasPermission reports whether the authorization grants p ("subscribe" or
// "publish").
func (a *Authorization) HasPermission(p string) bool {
	switch p {
	case "subscribe":
		return a.subscribe
	case "publish":
		return a.publish
	}
	return false
}

// IsAllowed applies D-AUTH-05. A subscription (channel non-empty) needs the
// subscribe permission, a publish (channel "") the publish permission; both
// need the topic regex to match and at least one channel regex to match the
// channel — for a publish, the empty string, so an authorization without
// channel regexes never allows publishing. Regexes are unanchored.
func (a *Authorization) IsAllowed(topic, channel string) bool {
	if a.topicRE == nil {
		return false // not validated: grants nothing
	}
	if channel != "" {
		if !a.subscribe {
			return false
		}
	} else if !a.publish {
		return false
	}
	if !a.topicRE.MatchString(topic) {
		return false
	}
	for _, re := range a.channelREs {
		if re.MatchString(channel) {
			return true
		}
	}
	return false
}

// State is a validated auth answer (D-AUTH-03). It is not modified after
// Query returns it, so it may be shared between goroutines.
type State struct {
	TTL            int             `json:"ttl"`
	Authorizations []Authorization `json:"authorizations"`
	Identity       string          `json:"identity"`
	IdentityURL    string          `json:"identity_url"`
	// Expires is when the answer stops being valid (received + ttl).
	Expires time.Time `json:"-"`
}

// IsAllowed reports whether any authorization allows topic/channel
// (channel "" for a publish).
func (s *State) IsAllowed(topic, channel string) bool {
	for i := range s.Authorizations {
		if s.Authorizations[i].IsAllowed(topic, channel) {
			return true
		}
	}
	return false
}

// IsExpired reports whether the answer's ttl has run out (D-AUTH-06).
func (s *State) IsExpired() bool { return s.Expires.Before(time.Now()) }

// validate checks an answer and prepares it for matching.
func (s *State) validate() error {
	for i := range s.Authorizations {
		if err := s.Authorizations[i].compile(); err != nil {
			return err
		}
	}
	if s.TTL <= 0 {
		return fmt.Errorf("invalid TTL %d (must be >0)", s.TTL)
	}
	// A ttl beyond what a time.Duration holds (~292 years) would overflow
	// into a past expiry and make every command re-query the auth server;
	// it means "valid for as long as we can tell" instead.
	ttl := time.Duration(math.MaxInt64)
	if s.TTL < int(math.MaxInt64/int64(time.Second)) {
		ttl = time.Duration(s.TTL) * time.Second
	}
	s.Expires = time.Now().Add(ttl)
	return nil
}

// Endpoint is the URL queried for a configured address: a full URL (one
// containing "://") as it is, else http://<host:port>/auth (D-CLI-15).
func Endpoint(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr + "/auth"
}

// Query asks the auth servers at addrs, in order from a random start, until
// one gives a valid answer (D-AUTH-04). If all fail, the error names each
// server's failure. method is MethodGet or MethodPost.
func Query(ctx context.Context, client *http.Client, addrs []string, method string, r Request) (*State, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no auth servers configured")
	}
	start := rand.IntN(len(addrs))
	var failures []string
	for i := range addrs {
		addr := addrs[(start+i)%len(addrs)]
		s, err := QueryOne(ctx, client, addr, method, r)
		if err == nil {
			return s, nil
		}
		failures = append(failures, fmt.Sprintf("%s: %s", addr, err))
	}
	return nil, fmt.Errorf("auth query failed on every server - %s", strings.Join(failures, "; "))
}

// QueryOne asks the auth server at addr (host:port or a full URL) and
// validates its answer (D-AUTH-01..03).
func QueryOne(ctx context.Context, client *http.Client, addr, method string, r Request) (*State, error) {
	if method != MethodGet && method != MethodPost {
		return nil, fmt.Errorf("invalid auth request method %q", method)
	}
	endpoint := Endpoint(addr)
	if method == MethodGet {
		// the query is appended as it is, as NSQ does (D-AUTH-01)
		endpoint = endpoint + "?" + r.values().Encode()
	}
	var body []byte
	if method == MethodPost {
		var err error
		// url.Values is map[string][]string: values are arrays
		if body, err = json.Marshal(r.values()); err != nil {
			return nil, err
		}
	}

	status, respBody, err := do(ctx, client, method, endpoint, body)
	if err != nil {
		return nil, err
	}
	// a 403 on plain HTTP points at the server's HTTPS port: retry once there
	if status == http.StatusForbidden && strings.HasPrefix(strings.ToLower(endpoint), "http://") {
		httpsURL, herr := httpsEndpoint(endpoint, respBody)
		if herr != nil {
			return nil, fmt.Errorf("got 403 and %s", herr)
		}
		if status, respBody, err = do(ctx, client, method, httpsURL, body); err != nil {
			return nil, err
		}
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("got response %d %q", status, truncate(respBody, 256))
	}

	var s State
	if err := json.Unmarshal(respBody, &s); err != nil {
		return nil, fmt.Errorf("invalid JSON response - %s", err)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// do sends one request and reads at most MaxResponseSize of the answer.
func do(ctx context.Context, client *http.Client, method, endpoint string, body []byte) (int, []byte, error) {
	var rd io.Reader
	httpMethod := http.MethodGet
	if method == MethodPost {
		httpMethod = http.MethodPost
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, httpMethod, endpoint, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", acceptHeader)
	if method == MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return 0, nil, err
	}
	if len(b) > MaxResponseSize {
		return 0, nil, fmt.Errorf("response larger than %d bytes", MaxResponseSize)
	}
	return resp.StatusCode, b, nil
}

// httpsEndpoint turns an http:// endpoint into https:// on the port a 403
// answer names as https_port (top level, or under "data" as NSQ's older
// response envelope has it). Path and query are kept.
func httpsEndpoint(endpoint string, body []byte) (string, error) {
	var v struct {
		HTTPSPort int `json:"https_port"`
		Data      struct {
			HTTPSPort int `json:"https_port"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("no https_port in the response - %s", err)
	}
	port := v.HTTPSPort
	if port == 0 {
		port = v.Data.HTTPSPort
	}
	if port <= 0 || port > 65535 {
		return "", errors.New("no valid https_port in the response")
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	u.Scheme = "https"
	u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(port))
	return u.String(), nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
