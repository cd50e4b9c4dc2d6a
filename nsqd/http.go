package nsqd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/ournsq/nsq/internal/httpapi"
	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
	"github.com/ournsq/nsq/internal/version"
)

// httpServer serves nsqd's HTTP API (spec section 3). Handlers run on
// net/http's goroutines and only touch nsqd through its locked/atomic API.
type httpServer struct {
	nsqd   *NSQD
	router http.Handler
}

func newHTTPServer(n *NSQD) *httpServer {
	logf := httpapi.LogFunc(n.logf)
	log := httpapi.Log(logf)
	router := httpapi.NewRouter(logf)
	s := &httpServer{nsqd: n, router: router}

	router.Handle("GET", "/ping", httpapi.Decorate(s.doPing, log, httpapi.PlainText))
	router.Handle("GET", "/info", httpapi.Decorate(s.doInfo, log, httpapi.V1))

	// publishing is not access-logged (D-HTTP-08, Q-18)
	router.Handle("POST", "/pub", httpapi.Decorate(s.doPUB, httpapi.V1))
	router.Handle("POST", "/mpub", httpapi.Decorate(s.doMPUB, httpapi.V1))
	router.Handle("GET", "/stats", httpapi.Decorate(s.doStats, log, httpapi.V1))

	router.Handle("POST", "/topic/create", httpapi.Decorate(s.doCreateTopic, log, httpapi.V1))
	router.Handle("POST", "/topic/delete", httpapi.Decorate(s.doDeleteTopic, log, httpapi.V1))
	router.Handle("POST", "/topic/empty", httpapi.Decorate(s.doEmptyTopic, log, httpapi.V1))
	router.Handle("POST", "/topic/pause", httpapi.Decorate(s.doPauseTopic, log, httpapi.V1))
	router.Handle("POST", "/topic/unpause", httpapi.Decorate(s.doPauseTopic, log, httpapi.V1))
	router.Handle("POST", "/channel/create", httpapi.Decorate(s.doCreateChannel, log, httpapi.V1))
	router.Handle("POST", "/channel/delete", httpapi.Decorate(s.doDeleteChannel, log, httpapi.V1))
	router.Handle("POST", "/channel/empty", httpapi.Decorate(s.doEmptyChannel, log, httpapi.V1))
	router.Handle("POST", "/channel/pause", httpapi.Decorate(s.doPauseChannel, log, httpapi.V1))
	router.Handle("POST", "/channel/unpause", httpapi.Decorate(s.doPauseChannel, log, httpapi.V1))
	router.Handle("GET", "/config/:opt", httpapi.Decorate(s.doConfig, log, httpapi.V1))
	router.Handle("PUT", "/config/:opt", httpapi.Decorate(s.doConfig, log, httpapi.V1))

	// pprof: index at /debug/pprof/ (/debug/pprof redirects there), not
	// access-logged (D-HTTP-35)
	router.HandlerFunc("GET", "/debug/pprof/", pprof.Index)
	router.HandlerFunc("GET", "/debug/pprof/cmdline", pprof.Cmdline)
	router.HandlerFunc("GET", "/debug/pprof/symbol", pprof.Symbol)
	router.HandlerFunc("POST", "/debug/pprof/symbol", pprof.Symbol)
	router.HandlerFunc("GET", "/debug/pprof/profile", pprof.Profile)
	router.Handler("GET", "/debug/pprof/heap", pprof.Handler("heap"))
	router.Handler("GET", "/debug/pprof/goroutine", pprof.Handler("goroutine"))
	router.Handler("GET", "/debug/pprof/block", pprof.Handler("block"))
	router.Handler("GET", "/debug/pprof/threadcreate", pprof.Handler("threadcreate"))
	router.Handle("PUT", "/debug/setblockrate", httpapi.Decorate(s.doBlockRate, log, httpapi.PlainText))
	router.Handle("POST", "/debug/freememory", httpapi.Decorate(s.doFreeMemory, log, httpapi.PlainText))
	return s
}

func (s *httpServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s.router.ServeHTTP(w, req)
}

func httpErr(code int, text string) error { return httpapi.Err{Code: code, Text: text} }

// D-HTTP-12
func (s *httpServer) doPing(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	if !s.nsqd.IsHealthy() {
		return nil, httpErr(500, s.nsqd.GetHealth())
	}
	return "OK", nil
}

// infoResponse is /info; field order is the key order (D-HTTP-13).
type infoResponse struct {
	Version                string `json:"version"`
	BroadcastAddress       string `json:"broadcast_address"`
	Hostname               string `json:"hostname"`
	HTTPPort               int    `json:"http_port"`
	TCPPort                int    `json:"tcp_port"`
	StartTime              int64  `json:"start_time"`
	MaxHeartbeatInterval   int64  `json:"max_heartbeat_interval"`
	MaxOutputBufferSize    int64  `json:"max_output_buffer_size"`
	MaxOutputBufferTimeout int64  `json:"max_output_buffer_timeout"`
	MaxDeflateLevel        int    `json:"max_deflate_level"`
	TopologyZone           string `json:"topology_zone"`
	TopologyRegion         string `json:"topology_region"`
}

func (s *httpServer) doInfo(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	hostname, err := os.Hostname()
	if err != nil {
		return nil, httpErr(500, err.Error())
	}
	opts := s.nsqd.getOpts()
	return infoResponse{
		Version:                version.Binary,
		BroadcastAddress:       opts.BroadcastAddress,
		Hostname:               hostname,
		HTTPPort:               s.nsqd.httpPort(),
		TCPPort:                s.nsqd.tcpPort(),
		StartTime:              s.nsqd.startTime.Unix(),
		MaxHeartbeatInterval:   int64(opts.MaxHeartbeatInterval),
		MaxOutputBufferSize:    opts.MaxOutputBufferSize,
		MaxOutputBufferTimeout: int64(opts.MaxOutputBufferTimeout),
		MaxDeflateLevel:        opts.MaxDeflateLevel,
		TopologyZone:           opts.TopologyZone,
		TopologyRegion:         opts.TopologyRegion,
	}, nil
}

// getTopicFromQuery validates the publish target: /pub and /mpub answer
// INVALID_TOPIC (not INVALID_ARG_TOPIC) and create the topic.
func (s *httpServer) getTopicFromQuery(req *http.Request) (*Topic, *httpapi.ReqParams, error) {
	params, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, nil, err
	}
	topicName, ok := params.Get("topic")
	if !ok {
		return nil, nil, httpErr(400, "MISSING_ARG_TOPIC")
	}
	if !protocol.IsValidTopicName(topicName) {
		return nil, nil, httpErr(400, "INVALID_TOPIC")
	}
	return s.nsqd.GetTopic(topicName), params, nil
}

// D-HTTP-14: the size is checked from Content-Length and while reading, so
// an oversized body is refused without being held in memory.
func (s *httpServer) doPUB(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	maxMsgSize := s.nsqd.getOpts().MaxMsgSize
	if req.ContentLength > maxMsgSize {
		return nil, httpErr(413, "MSG_TOO_BIG")
	}
	var body []byte
	var err error
	if n := req.ContentLength; n > 0 {
		// net/http delivers exactly Content-Length bytes
		body = make([]byte, n)
		_, err = io.ReadFull(req.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(req.Body, maxMsgSize+1))
	}
	if err != nil {
		return nil, httpErr(500, "INTERNAL_ERROR")
	}
	if int64(len(body)) > maxMsgSize {
		return nil, httpErr(413, "MSG_TOO_BIG")
	}
	if len(body) == 0 {
		return nil, httpErr(400, "MSG_EMPTY")
	}

	topic, params, err := s.getTopicFromQuery(req)
	if err != nil {
		return nil, err
	}

	var deferred time.Duration
	if ds, ok := params.Get("defer"); ok {
		if deferred, ok = s.parseDefer(ds); !ok {
			return nil, httpErr(400, "INVALID_DEFER")
		}
	}
	if err := publishOne(topic, body, deferred); err != nil {
		return nil, err
	}
	return "OK", nil
}

// parseDefer reads /pub's defer (ms, 0..--max-req-timeout).
func (s *httpServer) parseDefer(ds string) (time.Duration, bool) {
	di, err := strconv.ParseInt(ds, 10, 64)
	maxMs := int64(s.nsqd.getOpts().MaxReqTimeout / time.Millisecond)
	if err != nil || di < 0 || di > maxMs {
		return 0, false
	}
	return time.Duration(di) * time.Millisecond, true
}

// publishOne publishes the body of a /pub (which it keeps).
func publishOne(topic *Topic, body []byte, deferred time.Duration) error {
	msg := newMessageFor(topic, body)
	msg.deferred = deferred
	if err := topic.PutMessage(msg); err != nil {
		return putError(err)
	}
	return nil
}

// putError maps a topic put failure: exiting is 503, a backend failure 500.
func putError(err error) error {
	if errors.Is(err, errExiting) {
		return httpErr(503, "EXITING")
	}
	return httpErr(500, "INTERNAL_ERROR")
}

// D-HTTP-15/16
func (s *httpServer) doMPUB(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	opts := s.nsqd.getOpts()
	if req.ContentLength > opts.MaxBodySize {
		return nil, httpErr(413, "BODY_TOO_BIG")
	}
	topic, params, err := s.getTopicFromQuery(req)
	if err != nil {
		return nil, err
	}

	binaryMode := false
	if b, ok := params.Get("binary"); ok {
		var known bool
		if binaryMode, known = mpubBinaryParam(b); !known {
			// NSQ treats any other value as binary (logged as deprecated)
			s.nsqd.logf(lg.WARN, "deprecated value '%s' used for /mpub binary param", b)
		}
	}

	var r io.Reader = req.Body
	if binaryMode {
		br := textReaderPool.Get().(*bufio.Reader)
		br.Reset(req.Body)
		defer func() {
			br.Reset(nil)
			textReaderPool.Put(br)
		}()
		r = br
	}
	msgs, scratch, err := readHTTPMPUB(r, req.ContentLength, binaryMode, topic, opts)
	if err != nil {
		return nil, err
	}
	if err := publishMany(topic, msgs, scratch); err != nil {
		return nil, err
	}
	return "OK", nil
}

// mpubBinaryParam reads /mpub's binary: true/1 and false/0 are known;
// anything else means binary too.
func mpubBinaryParam(b string) (binary, known bool) {
	switch b {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return true, false
}

// readHTTPMPUB reads the messages of an /mpub body of size bytes (-1:
// unknown), binary or one per line, with pooled blocks.
func readHTTPMPUB(r io.Reader, size int64, binary bool, topic *Topic, opts *Options) ([]*Message, *mpubScratch, error) {
	if !binary {
		return readTextMPUBPooled(r, size, topic, opts.MaxMsgSize, opts.MaxBodySize)
	}
	msgs, scratch, cerr := readMPUBPooled(r, topic, opts.MaxMsgSize, opts.MaxBodySize)
	if cerr != nil {
		return nil, nil, httpErr(413, strings.TrimPrefix(cerr.Code, "E_"))
	}
	return msgs, scratch, nil
}

// publishMany publishes an /mpub's messages, then recycles their blocks
// if no queue keeps them in memory.
func publishMany(topic *Topic, msgs []*Message, scratch *mpubScratch) error {
	onlyOnDisk, err := topic.putMessages(msgs)
	if err != nil {
		return putError(err)
	}
	recycleMPUB(scratch, msgs, onlyOnDisk)
	return nil
}

// boolParam reads include_clients / include_mem: only false/0 turn it off.
func boolParam(params *httpapi.ReqParams, key string) bool {
	v, _ := params.Get(key)
	switch v {
	case "false", "0":
		return false
	}
	return true
}

// statsResponse is the /stats JSON top level (D-HTTP-18).
type statsResponse struct {
	Version   string        `json:"version"`
	Health    string        `json:"health"`
	StartTime int64         `json:"start_time"`
	Topics    []TopicStats  `json:"topics"`
	Memory    *MemoryStats  `json:"memory,omitempty"`
	Producers []ClientStats `json:"producers"`
}

func (s *httpServer) doStats(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	params, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, err
	}
	format, _ := params.Get("format")
	topicName, _ := params.Get("topic")
	channelName, _ := params.Get("channel")
	if topicName == "" {
		channelName = ""
	}
	includeClients := boolParam(params, "include_clients")
	includeMem := boolParam(params, "include_mem")

	topics := s.nsqd.GetStats(topicName, channelName, includeClients)
	var producers []ClientStats
	if includeClients {
		producers = s.nsqd.GetProducerStats(topicName)
	}
	var ms *MemoryStats
	if includeMem {
		m := getMemStats()
		ms = &m
	}

	if format != "json" {
		return s.nsqd.printStats(topics, producers, ms), nil
	}
	return statsResponse{
		Version:   version.Binary,
		Health:    s.nsqd.GetHealth(),
		StartTime: s.nsqd.startTime.Unix(),
		Topics:    topics,
		Memory:    ms,
		Producers: producers,
	}, nil
}

// printStats renders the text /stats (D-HTTP-24).
func (n *NSQD) printStats(topics []TopicStats, producers []ClientStats, ms *MemoryStats) string {
	var w bytes.Buffer
	fmt.Fprintf(&w, "%s\n", version.String("nsqd"))
	fmt.Fprintf(&w, "start_time %v\n", n.startTime.Format(time.RFC3339))
	fmt.Fprintf(&w, "uptime %s\n", time.Since(n.startTime))
	fmt.Fprintf(&w, "\nHealth: %s\n", n.GetHealth())
	if ms != nil {
		fmt.Fprintf(&w, "\nMemory:\n")
		for _, kv := range []struct {
			k string
			v uint64
		}{
			{"heap_objects", ms.HeapObjects},
			{"heap_idle_bytes", ms.HeapIdleBytes},
			{"heap_in_use_bytes", ms.HeapInUseBytes},
			{"heap_released_bytes", ms.HeapReleasedBytes},
			{"gc_pause_usec_100", ms.GCPauseUsec100},
			{"gc_pause_usec_99", ms.GCPauseUsec99},
			{"gc_pause_usec_95", ms.GCPauseUsec95},
			{"next_gc_bytes", ms.NextGCBytes},
			{"gc_total_runs", uint64(ms.GCTotalRuns)},
		} {
			fmt.Fprintf(&w, "   %-25s\t%d\n", kv.k, kv.v)
		}
	}

	if len(topics) == 0 {
		fmt.Fprintf(&w, "\nTopics: None\n")
	} else {
		fmt.Fprintf(&w, "\nTopics:")
	}
	for _, t := range topics {
		prefix := "   "
		if t.Paused {
			prefix = "*P "
		}
		fmt.Fprintf(&w, "\n%s[%-15s] depth: %-5d be-depth: %-5d msgs: %-8d e2e%%: %s\n",
			prefix, t.TopicName, t.Depth, t.BackendDepth, t.MessageCount, t.E2EProcessingLatency)
		for _, c := range t.Channels {
			prefix := "      "
			if c.Paused {
				prefix = "   *P "
			}
			fmt.Fprintf(&w, "%s[%-25s] depth: %-5d be-depth: %-5d inflt: %-4d def: %-4d re-q: %-5d timeout: %-5d msgs: %-8d e2e%%: %s\n",
				prefix, c.ChannelName, c.Depth, c.BackendDepth, c.InFlightCount, c.DeferredCount,
				c.RequeueCount, c.TimeoutCount, c.MessageCount, c.E2EProcessingLatency)
			for _, client := range c.Clients {
				fmt.Fprintf(&w, "        %s\n", client)
			}
		}
	}

	if len(producers) == 0 {
		fmt.Fprintf(&w, "\nProducers: None\n")
	} else {
		fmt.Fprintf(&w, "\nProducers:\n")
		for _, client := range producers {
			fmt.Fprintf(&w, "   %s\n", client)
		}
	}
	return w.String()
}

// String renders the text form of the e2e percentiles: empty until
// percentiles are configured (D-E2E-02).
func (e E2ELatency) String() string {
	if len(e.Percentiles) == 0 {
		return ""
	}
	parts := make([]string, 0, len(e.Percentiles))
	for _, p := range e.Percentiles {
		parts = append(parts, nanoSecondToHuman(p["value"]))
	}
	return strings.Join(parts, ", ")
}

// nanoSecondToHuman renders ns with one decimal in ns, us, ms or s.
func nanoSecondToHuman(v float64) string {
	switch {
	case v > 1e9:
		return fmt.Sprintf("%.1fs", v/1e9)
	case v > 1e6:
		return fmt.Sprintf("%.1fms", v/1e6)
	case v > 1e3:
		return fmt.Sprintf("%.1fus", v/1e3)
	}
	return fmt.Sprintf("%.1fns", v)
}

// topicParam reads a required topic name without validating it (the
// delete/pause routes answer 404 for unknown or invalid names).
func topicParam(req *http.Request) (*httpapi.ReqParams, string, error) {
	params, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, "", err
	}
	name, ok := params.Get("topic")
	if !ok {
		return nil, "", httpErr(400, "MISSING_ARG_TOPIC")
	}
	return params, name, nil
}

// D-HTTP-25
func (s *httpServer) doCreateTopic(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	_, name, err := topicParam(req)
	if err != nil {
		return nil, err
	}
	if !protocol.IsValidTopicName(name) {
		return nil, httpErr(400, "INVALID_TOPIC")
	}
	s.nsqd.GetTopic(name)
	return nil, nil
}

// D-HTTP-26
func (s *httpServer) doDeleteTopic(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	_, name, err := topicParam(req)
	if err != nil {
		return nil, err
	}
	if err := s.nsqd.DeleteExistingTopic(name); err != nil {
		return nil, httpErr(404, "TOPIC_NOT_FOUND")
	}
	return nil, nil
}

// D-HTTP-27
func (s *httpServer) doEmptyTopic(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	_, name, err := topicParam(req)
	if err != nil {
		return nil, err
	}
	if !protocol.IsValidTopicName(name) {
		return nil, httpErr(400, "INVALID_TOPIC")
	}
	topic, err := s.nsqd.GetExistingTopic(name)
	if err != nil {
		return nil, httpErr(404, "TOPIC_NOT_FOUND")
	}
	if err := topic.Empty(); err != nil {
		return nil, httpErr(500, "INTERNAL_ERROR")
	}
	return nil, nil
}

// D-HTTP-28: the pause flag is persisted before answering.
func (s *httpServer) doPauseTopic(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	_, name, err := topicParam(req)
	if err != nil {
		return nil, err
	}
	topic, err := s.nsqd.GetExistingTopic(name)
	if err != nil {
		return nil, httpErr(404, "TOPIC_NOT_FOUND")
	}
	if strings.Contains(req.URL.Path, "unpause") {
		err = topic.UnPause()
	} else {
		err = topic.Pause()
	}
	if err != nil {
		return nil, httpErr(500, "INTERNAL_ERROR")
	}
	if err := s.nsqd.PersistMetadata(); err != nil {
		s.nsqd.logf(lg.ERROR, "failed to persist metadata - %s", err)
	}
	return nil, nil
}

// getExistingChannel resolves topic and channel parameters (D-HTTP-29..32).
func (s *httpServer) getExistingTopicChannel(req *http.Request) (*Topic, string, error) {
	params, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, "", err
	}
	topicName, channelName, err := httpapi.GetTopicChannelArgs(params)
	if err != nil {
		return nil, "", err
	}
	topic, err := s.nsqd.GetExistingTopic(topicName)
	if err != nil {
		return nil, "", httpErr(404, "TOPIC_NOT_FOUND")
	}
	return topic, channelName, nil
}

func (s *httpServer) getExistingChannel(req *http.Request) (*Topic, *Channel, error) {
	topic, channelName, err := s.getExistingTopicChannel(req)
	if err != nil {
		return nil, nil, err
	}
	channel, err := topic.GetExistingChannel(channelName)
	if err != nil {
		return nil, nil, httpErr(404, "CHANNEL_NOT_FOUND")
	}
	return topic, channel, nil
}

func (s *httpServer) doCreateChannel(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	topic, channelName, err := s.getExistingTopicChannel(req)
	if err != nil {
		return nil, err
	}
	topic.GetChannel(channelName)
	return nil, nil
}

func (s *httpServer) doDeleteChannel(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	topic, channel, err := s.getExistingChannel(req)
	if err != nil {
		return nil, err
	}
	if err := topic.DeleteExistingChannel(channel.name); err != nil {
		return nil, httpErr(404, "CHANNEL_NOT_FOUND")
	}
	return nil, nil
}

func (s *httpServer) doEmptyChannel(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	_, channel, err := s.getExistingChannel(req)
	if err != nil {
		return nil, err
	}
	if err := channel.Empty(); err != nil {
		return nil, httpErr(500, "INTERNAL_ERROR")
	}
	return nil, nil
}

func (s *httpServer) doPauseChannel(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	_, channel, err := s.getExistingChannel(req)
	if err != nil {
		return nil, err
	}
	if strings.Contains(req.URL.Path, "unpause") {
		err = channel.UnPause()
	} else {
		err = channel.Pause()
	}
	if err != nil {
		return nil, httpErr(500, "INTERNAL_ERROR")
	}
	if err := s.nsqd.PersistMetadata(); err != nil {
		s.nsqd.logf(lg.ERROR, "failed to persist metadata - %s", err)
	}
	return nil, nil
}

// D-HTTP-33/34
func (s *httpServer) doConfig(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	opt := ps.ByName("opt")

	if req.Method == "PUT" {
		maxMsgSize := s.nsqd.getOpts().MaxMsgSize
		body, err := io.ReadAll(io.LimitReader(req.Body, maxMsgSize+1))
		if err != nil {
			return nil, httpErr(500, "INTERNAL_ERROR")
		}
		if int64(len(body)) > maxMsgSize || len(body) == 0 {
			return nil, httpErr(413, "INVALID_VALUE")
		}
		switch opt {
		case "nsqlookupd_tcp_addresses":
			var addrs []string
			if err := json.Unmarshal(body, &addrs); err != nil {
				return nil, httpErr(400, "INVALID_VALUE")
			}
			s.nsqd.swapOpts(func(o *Options) { o.NSQLookupdTCPAddresses = addrs })
			s.nsqd.lookupdAddressesChanged()
		case "log_level":
			level, err := lg.ParseLogLevel(string(body))
			if err != nil {
				return nil, httpErr(400, "INVALID_VALUE")
			}
			s.nsqd.swapOpts(func(o *Options) { o.LogLevel = level })
			s.nsqd.logLevel.Store(level)
		default:
			return nil, httpErr(400, "INVALID_OPTION")
		}
	}

	v, ok := configValue(s.nsqd.getOpts(), opt)
	if !ok {
		return nil, httpErr(400, "INVALID_OPTION")
	}
	return v, nil
}

// configValue looks an option up by its config-file key (D-CFG-03) among
// the options NSQ has flags for. Strings come back raw, durations as ns,
// everything else as its JSON value.
func configValue(opts *Options, key string) (interface{}, bool) {
	if key == "statsd_prefix" {
		return statsdPrefix(opts), true // expanded, as NSQ reports it (D-CLI-43)
	}
	val := reflect.ValueOf(opts).Elem()
	typ := val.Type()
	for i := 0; i < typ.NumField(); i++ {
		field := typ.Field(i)
		flagName := field.Tag.Get("flag")
		if flagName == "" {
			flagName = field.Tag.Get("later")
		}
		if flagName == "" {
			continue
		}
		cfgName := field.Tag.Get("cfg")
		if cfgName == "" {
			cfgName = strings.ReplaceAll(flagName, "-", "_")
		}
		if cfgName != key {
			continue
		}
		switch v := val.Field(i).Interface().(type) {
		case time.Duration:
			return int64(v), true
		case lg.LogLevel:
			return int(v), true
		case []string:
			if v == nil {
				v = []string{}
			}
			return v, true
		case []float64:
			if v == nil {
				v = []float64{}
			}
			return v, true
		default:
			return v, true
		}
	}
	return nil, false
}

// doBlockRate sets the block-profile rate. NSQ answers 500 after applying
// a valid rate (a bug, Q-06); we answer 200 OK.
func (s *httpServer) doBlockRate(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	rate, err := strconv.Atoi(req.URL.Query().Get("rate"))
	if err != nil {
		return nil, httpErr(400, fmt.Sprintf("invalid block rate : %s", err.Error()))
	}
	runtime.SetBlockProfileRate(rate)
	return "OK", nil
}

// doFreeMemory returns memory to the OS; 200 OK where NSQ answers 500.
func (s *httpServer) doFreeMemory(w http.ResponseWriter, req *http.Request, ps httprouter.Params) (interface{}, error) {
	debug.FreeOSMemory()
	return "OK", nil
}

// listen binds addr: host:port is TCP, anything else a unix socket path
// (D-CLI-08/09, D-UNIX-01).
func listen(addr string) (net.Listener, error) {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return net.Listen("tcp", addr)
	}
	return net.Listen("unix", addr)
}

// listenerPort is a listener's TCP port, or -1 for a unix socket.
func listenerPort(l net.Listener) int {
	if a, ok := l.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return -1
}
