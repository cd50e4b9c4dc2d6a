package httpapi

import (
	"net/http"
	"net/http/pprof"

	"github.com/julienschmidt/httprouter"

	"github.com/ournsq/nsq/internal/lg"
)

// NewRouter returns an httprouter configured as NSQ's (D-HTTP-01):
// trailing-slash and case-fixing redirects, automatic OPTIONS answers with an
// Allow header, 405 with Allow for a known path and wrong method, and V1 JSON
// bodies for 404, 405 and handler panics (D-HTTP-07), all access-logged.
func NewRouter(logf LogFunc) *httprouter.Router {
	r := httprouter.New()
	r.RedirectTrailingSlash = true
	r.RedirectFixedPath = true
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = true
	r.NotFound = errorHandler(logf, Err{http.StatusNotFound, "NOT_FOUND"})
	r.MethodNotAllowed = errorHandler(logf, Err{http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"})
	r.PanicHandler = panicHandler(logf)
	return r
}

// errorHandler answers every request with e in the V1 envelope and logs it.
func errorHandler(logf LogFunc, e Err) http.Handler {
	h := Decorate(func(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
		return nil, e
	}, Log(logf), V1)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { h(w, req, nil) })
}

// panicHandler logs the panic and answers 500 INTERNAL_ERROR. A panic with
// http.ErrAbortHandler is re-raised: it is net/http's way to abort a response
// on purpose and must not be turned into a 500.
func panicHandler(logf LogFunc) func(http.ResponseWriter, *http.Request, interface{}) {
	internal := errorHandler(logf, errInternal)
	return func(w http.ResponseWriter, req *http.Request, p interface{}) {
		if p == http.ErrAbortHandler {
			panic(p)
		}
		logf(lg.ERROR, "panic in HTTP handler - %v", p)
		internal.ServeHTTP(w, req)
	}
}

// AddPprof registers NSQ's /debug/pprof routes (L-HTTP-13). The index lives at
// /debug/pprof without a trailing slash, so /debug/pprof/ redirects to it.
// They are not access-logged.
func AddPprof(r *httprouter.Router) {
	r.HandlerFunc(http.MethodGet, "/debug/pprof", pprof.Index)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/cmdline", pprof.Cmdline)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc(http.MethodPost, "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/profile", pprof.Profile)
	r.Handler(http.MethodGet, "/debug/pprof/heap", pprof.Handler("heap"))
	r.Handler(http.MethodGet, "/debug/pprof/goroutine", pprof.Handler("goroutine"))
	r.Handler(http.MethodGet, "/debug/pprof/block", pprof.Handler("block"))
	r.Handler(http.MethodGet, "/debug/pprof/threadcreate", pprof.Handler("threadcreate"))
}
