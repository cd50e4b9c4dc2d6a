// Package httpapi owns the HTTP conventions shared by nsqd and nsqlookupd
// (spec D-HTTP-01/02/03/06/07/08): the httprouter set-up with NSQ's JSON 404,
// 405 and panic answers, the handler decorators (V1 envelope, plain text,
// access log), the HTTP error type carrying a status code, query-string
// parameter parsing, and an http.Server wrapper with timeouts and a clean
// shutdown.
//
// It holds no state of its own: every value here is either immutable after
// construction or owned by the goroutine serving one request.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/ournsq/nsq/internal/lg"
)

// LogFunc writes one log line at level. Daemons pass a closure that applies
// their configured level, so this package never needs to know it.
type LogFunc func(level lg.LogLevel, f string, args ...interface{})

// Err is an HTTP error: Code is the status, Text the message clients see in
// {"message":"<Text>"} (V1) or as the raw body (PlainText).
type Err struct {
	Code int
	Text string
}

// Error returns the client-visible text.
func (e Err) Error() string { return e.Text }

// errInternal is what clients see for a panic or an error that is not an Err.
var errInternal = Err{http.StatusInternalServerError, "INTERNAL_ERROR"}

// asErr maps any error to the Err a client will see: an Err (possibly
// wrapped) keeps its code and text; anything else is a 500 INTERNAL_ERROR so
// internal error texts never leak onto the wire.
func asErr(err error) Err {
	var e Err
	if errors.As(err, &e) {
		return e
	}
	return errInternal
}

// APIHandler is a route handler: it returns either a value to render or an
// error (normally an Err). Decorators decide how the result is written.
type APIHandler func(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error)

// Decorator wraps an APIHandler.
type Decorator func(APIHandler) APIHandler

// Decorate applies ds to f in order, so Decorate(f, Log(l), V1) is
// V1(Log(f)): the logger sees f's outcome and V1 writes the response.
func Decorate(f APIHandler, ds ...Decorator) httprouter.Handle {
	decorated := f
	for _, d := range ds {
		decorated = d(decorated)
	}
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		decorated(w, req, ps)
	}
}

// Log is the access-log decorator (D-HTTP-08):
//
//	INFO: <status> <METHOD> <request-uri> (<remote addr>) <elapsed>
func Log(logf LogFunc) Decorator {
	return func(f APIHandler) APIHandler {
		return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
			start := time.Now()
			data, err := f(w, req, ps)
			status := http.StatusOK
			if err != nil {
				status = asErr(err).Code
			}
			logf(lg.INFO, "%d %s %s (%s) %s",
				status, req.Method, req.URL.RequestURI(), req.RemoteAddr, time.Since(start))
			return data, err
		}
	}
}

// V1 writes the handler's result in NSQ's V1 envelope (D-HTTP-02); see
// RespondV1.
func V1(f APIHandler) APIHandler {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
		data, err := f(w, req, ps)
		if err != nil {
			e := asErr(err)
			RespondV1(w, e.Code, e)
			return nil, nil
		}
		RespondV1(w, http.StatusOK, data)
		return nil, nil
	}
}

// Header names and values of the V1 envelope.
const (
	HeaderNSQContentType = "X-NSQ-Content-Type"
	NSQContentTypeV1     = "nsq; version=1.0"
	ContentTypeJSON      = "application/json; charset=utf-8"
)

// RespondV1 writes one V1 response (D-HTTP-02). With code 200: a string or
// []byte is written raw (net/http sniffs text/plain), nil gives an empty body
// without Content-Type, anything else is JSON. Any other code writes
// {"message":"<data>"} as JSON. X-NSQ-Content-Type is always set: go-nsq and
// nsqadmin detect the V1 format by it.
func RespondV1(w http.ResponseWriter, code int, data interface{}) {
	var body []byte
	isJSON := false

	if code == http.StatusOK {
		switch d := data.(type) {
		case string:
			if d == "OK" {
				body = okBody // the answer of /pub, /ping...: no conversion
				break
			}
			body = []byte(d)
		case []byte:
			body = d
		case nil:
		default:
			b, err := json.Marshal(d)
			if err != nil {
				code = http.StatusInternalServerError
				data = errInternal
			} else {
				isJSON = true
				body = b
			}
		}
	}

	if code != http.StatusOK {
		isJSON = true
		body, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{fmt.Sprintf("%s", data)})
	}

	h := w.Header()
	if isJSON {
		h.Set("Content-Type", ContentTypeJSON)
	}
	// the canonical form of HeaderNSQContentType, as Set would store it
	// (Set allocates the canonical key on every call)
	h["X-Nsq-Content-Type"] = nsqContentTypeV1
	w.WriteHeader(code)
	w.Write(body)
}

var (
	okBody           = []byte("OK")
	nsqContentTypeV1 = []string{NSQContentTypeV1}
)

// PlainText writes the result as a raw body with no X-NSQ-Content-Type
// (D-HTTP-03); an error writes its status and text. The handler must return a
// string or []byte.
func PlainText(f APIHandler) APIHandler {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
		code := http.StatusOK
		data, err := f(w, req, ps)
		if err != nil {
			e := asErr(err)
			code, data = e.Code, e.Text
		}
		switch d := data.(type) {
		case string:
			w.WriteHeader(code)
			io.WriteString(w, d)
		case []byte:
			w.WriteHeader(code)
			w.Write(d)
		default:
			// A programming error; the router's panic handler answers 500.
			panic(fmt.Sprintf("httpapi.PlainText: unsupported response type %T", data))
		}
		return nil, nil
	}
}
