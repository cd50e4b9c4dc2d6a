package nsqd

import (
	"bytes"
	"errors"
	"net/url"
	"time"

	"github.com/ournsq/nsq/internal/httpapi"
	"github.com/ournsq/nsq/internal/protocol"
)

// fastPublish serves POST /pub and /mpub on the HTTP fast path
// (internal/httpapi/fast.go): the publishes that succeed, and the 500/503
// a failing put gives. Every request it does not answer itself — any 4xx,
// an unusual query — goes to net/http and doPUB/doMPUB, which answer it
// from the start; so both paths share the checks and the publishing, and
// nothing is done twice (a topic created here is found there).
type fastPublish struct {
	s *httpServer
}

// httpFastRoute is the plain HTTP listener's fast route, if it has one:
// with --tls-required every answer is TLS_REQUIRED.
func (n *NSQD) httpFastRoute() httpapi.FastRoute {
	opts := n.getOpts()
	if opts.TLSRequired != TLSNotRequired || opts.noHTTPFastPath {
		return nil
	}
	return fastPublish{s: &httpServer{nsqd: n}}
}

func (f fastPublish) MatchFast(path []byte, contentLength int64) bool {
	opts := f.s.nsqd.getOpts()
	switch string(path) {
	case "/pub":
		return contentLength <= opts.MaxMsgSize
	case "/mpub":
		return contentLength <= opts.MaxBodySize
	}
	return false
}

func (f fastPublish) ServeFast(path, rawQuery, body []byte) (int, string, bool) {
	q, ok := parseFastQuery(rawQuery)
	if !ok || !q.hasTopic || !protocol.IsValidTopicName(q.topic) {
		return 0, "", false
	}
	var err error
	if string(path) == "/pub" {
		var deferred time.Duration
		if q.hasDefer {
			if deferred, ok = f.s.parseDefer(q.deferMs); !ok {
				return 0, "", false
			}
		}
		topic := f.s.nsqd.GetTopic(q.topic)
		err = publishOne(topic, bytes.Clone(body), deferred)
	} else {
		binary := false
		if q.hasBinary {
			var known bool
			if binary, known = mpubBinaryParam(q.binary); !known {
				return 0, "", false // net/http logs the deprecated value
			}
		}
		opts := f.s.nsqd.getOpts()
		topic := f.s.nsqd.GetTopic(q.topic)
		msgs, scratch, rerr := readHTTPMPUB(bytes.NewReader(body), int64(len(body)), binary, topic, opts)
		if rerr != nil {
			return 0, "", false
		}
		err = publishMany(topic, msgs, scratch)
	}
	if err != nil {
		e := httpapi.Err{Code: 500, Text: "INTERNAL_ERROR"}
		errors.As(err, &e)
		return e.Code, e.Text, true
	}
	return 200, "OK", true
}

// fastQuery holds the parameters /pub and /mpub read (the first value of
// each, as ReqParams.Get).
type fastQuery struct {
	topic, deferMs, binary        string
	hasTopic, hasDefer, hasBinary bool
}

// parseFastQuery reads a query string as url.ParseQuery does. One without
// escapes is split here without allocating more than the values kept;
// ok is false where ParseQuery fails.
func parseFastQuery(raw []byte) (fastQuery, bool) {
	var q fastQuery
	if bytes.ContainsAny(raw, "%+;") {
		v, err := url.ParseQuery(string(raw))
		if err != nil {
			return q, false
		}
		if vs := v["topic"]; len(vs) > 0 {
			q.topic, q.hasTopic = vs[0], true
		}
		if vs := v["defer"]; len(vs) > 0 {
			q.deferMs, q.hasDefer = vs[0], true
		}
		if vs := v["binary"]; len(vs) > 0 {
			q.binary, q.hasBinary = vs[0], true
		}
		return q, true
	}
	for len(raw) > 0 {
		var part []byte
		part, raw, _ = bytes.Cut(raw, []byte("&"))
		if len(part) == 0 {
			continue
		}
		key, value, _ := bytes.Cut(part, []byte("="))
		switch {
		case !q.hasTopic && string(key) == "topic":
			q.topic, q.hasTopic = string(value), true
		case !q.hasDefer && string(key) == "defer":
			q.deferMs, q.hasDefer = string(value), true
		case !q.hasBinary && string(key) == "binary":
			q.binary, q.hasBinary = string(value), true
		}
	}
	return q, true
}
