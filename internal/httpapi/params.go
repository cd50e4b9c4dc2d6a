package httpapi

import (
	"net/http"
	"net/url"

	"github.com/ournsq/nsq/internal/protocol"
)

// ReqParams are a request's parameters, taken only from the URL query string
// (D-HTTP-06): bodies never contribute, so a form-encoded `topic=x` body is
// not a topic.
type ReqParams struct {
	url.Values
}

// NewReqParams parses req's query string. A malformed query (bad %-escape, a
// ';' separator) is a 400 INVALID_REQUEST.
func NewReqParams(req *http.Request) (*ReqParams, error) {
	v, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return nil, Err{http.StatusBadRequest, "INVALID_REQUEST"}
	}
	return &ReqParams{v}, nil
}

// Get returns the first value of key; ok is false when the key is absent
// (`?topic=` is present with an empty value).
func (p *ReqParams) Get(key string) (value string, ok bool) {
	vs, ok := p.Values[key]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// GetAll returns every value of key in request order.
func (p *ReqParams) GetAll(key string) []string {
	return p.Values[key]
}

// GetTopicArg returns the validated `topic` parameter or a 400
// MISSING_ARG_TOPIC / INVALID_ARG_TOPIC.
func GetTopicArg(p *ReqParams) (string, error) {
	topic, ok := p.Get("topic")
	if !ok {
		return "", Err{http.StatusBadRequest, "MISSING_ARG_TOPIC"}
	}
	if !protocol.IsValidTopicName(topic) {
		return "", Err{http.StatusBadRequest, "INVALID_ARG_TOPIC"}
	}
	return topic, nil
}

// GetTopicChannelArgs returns the validated `topic` and `channel` parameters,
// checked in that order, or a 400 MISSING_ARG_TOPIC / INVALID_ARG_TOPIC /
// MISSING_ARG_CHANNEL / INVALID_ARG_CHANNEL.
func GetTopicChannelArgs(p *ReqParams) (topic, channel string, err error) {
	topic, err = GetTopicArg(p)
	if err != nil {
		return "", "", err
	}
	channel, ok := p.Get("channel")
	if !ok {
		return "", "", Err{http.StatusBadRequest, "MISSING_ARG_CHANNEL"}
	}
	if !protocol.IsValidChannelName(channel) {
		return "", "", Err{http.StatusBadRequest, "INVALID_ARG_CHANNEL"}
	}
	return topic, channel, nil
}
