package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fzTransport answers the first request with (status1, body1) and every
// later one with (status2, body2), recording the requests.
type fzTransport struct {
	status [2]int
	body   [2][]byte
	reqs   []*http.Request
	posted [][]byte
}

func (tr *fzTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	i := min(len(tr.reqs), 1)
	tr.reqs = append(tr.reqs, req)
	var posted []byte
	if req.Body != nil {
		posted, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	tr.posted = append(tr.posted, posted)
	return &http.Response{
		StatusCode: tr.status[i],
		Header:     http.Header{},
		Body:       io.NopCloser(bytes.NewReader(tr.body[i])),
		Request:    req,
	}, nil
}

// fzJSONString is s as encoding/json transmits it: every byte that does
// not start a valid UTF-8 sequence becomes U+FFFD.
func fzJSONString(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

// fzStatus maps a fuzz value to a status: mostly 200, sometimes anything.
func fzStatus(v uint16) int {
	if v%4 == 3 {
		return 100 + int(v/4)%500
	}
	return 200
}

// fzRefValid is an independent reading of D-AUTH-03: a 200 whose JSON has
// ttl > 0 and authorizations whose permissions are subscribe/publish and
// whose topic and channels are valid regular expressions.
func fzRefValid(status int, body []byte) bool {
	if status != 200 {
		return false
	}
	var v struct {
		TTL            int `json:"ttl"`
		Authorizations []struct {
			Topic       string   `json:"topic"`
			Channels    []string `json:"channels"`
			Permissions []string `json:"permissions"`
		} `json:"authorizations"`
		Identity    string `json:"identity"`
		IdentityURL string `json:"identity_url"`
	}
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	for _, a := range v.Authorizations {
		for _, p := range a.Permissions {
			if p != "subscribe" && p != "publish" {
				return false
			}
		}
		for _, re := range append([]string{a.Topic}, a.Channels...) {
			if _, err := regexp.Compile(re); err != nil {
				return false
			}
		}
	}
	return v.TTL > 0
}

// fzHTTPSPort is the https_port a 403 answer names, 0 if none is valid.
func fzHTTPSPort(body []byte) int {
	var v struct {
		HTTPSPort int `json:"https_port"`
		Data      struct {
			HTTPSPort int `json:"https_port"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &v) != nil {
		return 0
	}
	p := v.HTTPSPort
	if p == 0 {
		p = v.Data.HTTPSPort
	}
	if p <= 0 || p > 65535 {
		return 0
	}
	return p
}

// FuzzAuthResponse: QueryOne against an auth server answering arbitrary
// statuses and bodies (D-AUTH-01..04): never a panic; the secret reaches
// the server unchanged (GET query or POST JSON); a 403 is retried once on
// https at the port it names; the answer is accepted exactly when it is
// valid, and an accepted State is fully compiled and consistent.
func FuzzAuthResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, post bool, secret string, status1 uint16, body1 []byte, status2 uint16, body2 []byte) {
		tr := &fzTransport{status: [2]int{fzStatus(status1), fzStatus(status2)}, body: [2][]byte{body1, body2}}
		client := &http.Client{Transport: tr}
		method := MethodGet
		if post {
			method = MethodPost
		}
		s, err := QueryOne(context.Background(), client, "auth.fuzz:4181", method, Request{Secret: secret, RemoteIP: "10.0.0.1"})

		// what the server was asked
		wantReqs := 1
		finalStatus, finalBody := tr.status[0], body1
		if tr.status[0] == http.StatusForbidden {
			if port := fzHTTPSPort(body1); port > 0 {
				wantReqs = 2
				finalStatus, finalBody = tr.status[1], body2
			} else {
				finalStatus = 0 // refused without a retry
			}
		}
		if len(tr.reqs) != wantReqs {
			t.Fatalf("%d requests, want %d", len(tr.reqs), wantReqs)
		}
		for i, req := range tr.reqs {
			var got []string
			if post {
				var vals map[string][]string
				if err := json.Unmarshal(tr.posted[i], &vals); err != nil {
					t.Fatalf("POST body %q: %v", tr.posted[i], err)
				}
				got = vals["secret"]
			} else {
				q, err := url.ParseQuery(req.URL.RawQuery)
				if err != nil {
					t.Fatalf("query %q: %v", req.URL.RawQuery, err)
				}
				got = q["secret"]
			}
			want := secret
			if post {
				// JSON strings are UTF-8: like NSQ's, the POST body
				// carries each byte that is not UTF-8 as U+FFFD
				want = fzJSONString(secret)
			}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("request %d carried secret %q, want %q", i, got, want)
			}
			if i == 1 {
				want := fmt.Sprintf("https://auth.fuzz:%d/auth", fzHTTPSPort(body1))
				if u := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path; u != want {
					t.Fatalf("403 retried at %s, want %s", u, want)
				}
			}
		}

		valid := fzRefValid(finalStatus, finalBody)
		switch {
		case valid && err != nil:
			t.Fatalf("valid answer %q refused: %v", finalBody, err)
		case !valid && err == nil:
			t.Fatalf("invalid answer (%d %q) accepted: %+v", finalStatus, finalBody, s)
		case err != nil:
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if s.TTL <= 0 || !s.Expires.After(time.Now()) || s.IsExpired() {
			t.Fatalf("accepted state with ttl %d expires %v", s.TTL, s.Expires)
		}
		for i := range s.Authorizations {
			a := &s.Authorizations[i]
			if a.topicRE == nil || len(a.channelREs) != len(a.Channels) {
				t.Fatalf("authorization %d not compiled: %+v", i, a)
			}
			for _, c := range []string{"", "ch"} {
				if a.IsAllowed("topic", c) && !a.topicRE.MatchString("topic") {
					t.Fatalf("authorization %d allows a topic its regex does not match", i)
				}
			}
			if a.IsAllowed("topic", "ch") && !a.HasPermission("subscribe") {
				t.Fatalf("authorization %d allows SUB without subscribe", i)
			}
			if a.IsAllowed("topic", "") && !a.HasPermission("publish") {
				t.Fatalf("authorization %d allows PUB without publish", i)
			}
		}
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("NSQ_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set NSQ_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	type seed struct {
		post    bool
		secret  string
		status1 uint16
		body1   string
		status2 uint16
		body2   string
	}
	ok := `{"ttl":3600,"identity":"user","identity_url":"https://id","authorizations":[{"topic":"^t.*$","channels":[".*"],"permissions":["subscribe","publish"]}]}`
	seeds := map[string]seed{
		"get-ok":             {false, "secret", 0, ok, 0, ""},
		"post-ok":            {true, "s3cr3t", 0, ok, 0, ""},
		"binary-secret":      {false, "\x00\xff&=?#%+ ", 0, ok, 0, ""},
		"no-authorizations":  {false, "s", 0, `{"ttl":60,"authorizations":[]}`, 0, ""},
		"null":               {false, "s", 0, `null`, 0, ""},
		"zero-ttl":           {false, "s", 0, `{"ttl":0,"authorizations":[]}`, 0, ""},
		"negative-ttl":       {false, "s", 0, `{"ttl":-5}`, 0, ""},
		"huge-ttl":           {false, "s", 0, `{"ttl":9223372036854775807}`, 0, ""},
		"bad-permission":     {false, "s", 0, `{"ttl":1,"authorizations":[{"topic":".*","channels":[],"permissions":["root"]}]}`, 0, ""},
		"bad-topic-regex":    {false, "s", 0, `{"ttl":1,"authorizations":[{"topic":"(","channels":[],"permissions":[]}]}`, 0, ""},
		"bad-channel-regex":  {false, "s", 0, `{"ttl":1,"authorizations":[{"topic":"","channels":["[z-a]"],"permissions":["publish"]}]}`, 0, ""},
		"wrong-types":        {false, "s", 0, `{"ttl":"60","authorizations":{}}`, 0, ""},
		"not-json":           {false, "s", 0, `<html>denied</html>`, 0, ""},
		"status-500":         {false, "s", 1603, ok, 0, ""},
		"status-403-retry":   {false, "s", 1215, `{"https_port":4182}`, 0, ok},
		"status-403-data":    {true, "s", 1215, `{"data":{"https_port":4182}}`, 1603, ok},
		"status-403-no-port": {false, "s", 1215, `{"message":"FORBIDDEN"}`, 0, ok},
		"status-403-bad":     {false, "s", 1215, `{"https_port":70000}`, 0, ok},
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzAuthResponse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\nbool(%v)\nstring(%s)\nuint16(%d)\n[]byte(%s)\nuint16(%d)\n[]byte(%s)\n",
			s.post, strconv.Quote(s.secret), s.status1, strconv.Quote(s.body1), s.status2, strconv.Quote(s.body2))
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A ttl too large for a time.Duration used to overflow into an answer that
// had already expired, so nsqd re-queried the auth server on every
// command (found by FuzzAuthResponse, seed-huge-ttl).
func TestHugeTTLDoesNotExpire(t *testing.T) {
	for _, ttl := range []int{9223372036854775807, 9223372037, 9223372036, 1 << 40} {
		s := State{TTL: ttl}
		if err := s.validate(); err != nil {
			t.Fatalf("ttl %d: %v", ttl, err)
		}
		if s.IsExpired() || s.Expires.Before(time.Now().Add(24*time.Hour)) {
			t.Fatalf("ttl %d: expires %v", ttl, s.Expires)
		}
	}
}
