package nsqlookupd

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/ournsq/nsq/internal/httpapi"
	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/version"
)

// httpServer holds the route handlers; it has no state of its own beyond
// the daemon it serves.
type httpServer struct {
	l *NSQLookupd
}

// newHTTPHandler builds the router (L-HTTP-01..15). Only the routes listed
// exist: the pre-1.0 names (/create_topic, /tombstone_topic_producer, ...)
// fall through to 404 (L-HTTP-15).
func newHTTPHandler(l *NSQLookupd) http.Handler {
	s := &httpServer{l: l}
	r := httpapi.NewRouter(l.logf)
	log := httpapi.Log(l.logf)
	v1 := func(h httpapi.APIHandler) httprouter.Handle { return httpapi.Decorate(h, log, httpapi.V1) }

	r.GET("/ping", httpapi.Decorate(s.ping, log, httpapi.PlainText))
	r.GET("/info", v1(s.info))

	r.GET("/debug", v1(s.debug))
	r.GET("/lookup", v1(s.lookup))
	r.GET("/topics", v1(s.topics))
	r.GET("/channels", v1(s.channels))
	r.GET("/nodes", v1(s.nodes))

	r.POST("/topic/create", v1(s.createTopic))
	r.POST("/topic/delete", v1(s.deleteTopic))
	r.POST("/channel/create", v1(s.createChannel))
	r.POST("/channel/delete", v1(s.deleteChannel))
	r.POST("/topic/tombstone", v1(s.tombstoneTopicProducer))

	httpapi.AddPprof(r)
	return r
}

var (
	errMissingTopic    = httpapi.Err{Code: http.StatusBadRequest, Text: "MISSING_ARG_TOPIC"}
	errMissingNode     = httpapi.Err{Code: http.StatusBadRequest, Text: "MISSING_ARG_NODE"}
	errTopicNotFound   = httpapi.Err{Code: http.StatusNotFound, Text: "TOPIC_NOT_FOUND"}
	errChannelNotFound = httpapi.Err{Code: http.StatusNotFound, Text: "CHANNEL_NOT_FOUND"}
)

// rawTopic returns the `topic` parameter without validating the name, as
// /lookup, /channels, /topic/delete and /topic/tombstone do.
func rawTopic(req *http.Request) (*httpapi.ReqParams, string, error) {
	p, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, "", err
	}
	topic, ok := p.Get("topic")
	if !ok {
		return nil, "", errMissingTopic
	}
	return p, topic, nil
}

// L-HTTP-01
func (s *httpServer) ping(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
	return "OK", nil
}

// L-HTTP-02
func (s *httpServer) info(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
	return struct {
		Version string `json:"version"`
	}{version.Binary}, nil
}

// L-HTTP-03
func (s *httpServer) topics(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
	return struct {
		Topics []string `json:"topics"`
	}{s.l.db.TopicNames()}, nil
}

// L-HTTP-04
func (s *httpServer) channels(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
	_, topic, err := rawTopic(req)
	if err != nil {
		return nil, err
	}
	return struct {
		Channels []string `json:"channels"`
	}{s.l.db.ChannelNames(topic)}, nil
}

// L-HTTP-05
func (s *httpServer) lookup(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
	_, topic, err := rawTopic(req)
	if err != nil {
		return nil, err
	}
	db := s.l.db
	if !db.HasRegistration(TopicRegistration(topic)) {
		return nil, errTopicNotFound
	}
	channels := db.ChannelNames(topic)
	active := FilterByActive(db.Producers(TopicRegistration(topic)), time.Now(),
		s.l.opts.InactiveProducerTimeout, s.l.opts.TombstoneLifetime)
	peers := make([]*PeerInfo, len(active))
	for i, p := range active {
		peers[i] = p.Peer
	}
	return struct {
		Channels  []string    `json:"channels"`
		Producers []*PeerInfo `json:"producers"`
	}{channels, peers}, nil
}

// node is one /nodes entry (L-HTTP-06), keys in NSQ's order.
type node struct {
	RemoteAddress    string   `json:"remote_address"`
	Hostname         string   `json:"hostname"`
	BroadcastAddress string   `json:"broadcast_address"`
	TCPPort          int      `json:"tcp_port"`
	HTTPPort         int      `json:"http_port"`
	Version          string   `json:"version"`
	TopologyZone     string   `json:"topology_zone"`
	TopologyRegion   string   `json:"topology_region"`
	Tombstones       []bool   `json:"tombstones"`
	Topics           []string `json:"topics"`
}

// L-HTTP-06: active peers regardless of tombstones; per topic, whether the
// tombstone is in force.
func (s *httpServer) nodes(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
	now := time.Now()
	db := s.l.db
	peers := FilterByActive(db.Producers(ClientRegistration), now, s.l.opts.InactiveProducerTimeout, 0)
	nodes := make([]node, len(peers))
	for i, p := range peers {
		topics, tombstones := db.PeerTopics(p.Peer, now, s.l.opts.TombstoneLifetime)
		pi := p.Peer
		nodes[i] = node{
			RemoteAddress:    pi.RemoteAddress,
			Hostname:         pi.Hostname,
			BroadcastAddress: pi.BroadcastAddress,
			TCPPort:          pi.TCPPort,
			HTTPPort:         pi.HTTPPort,
			Version:          pi.Version,
			TopologyZone:     pi.TopologyZone,
			TopologyRegion:   pi.TopologyRegion,
			Tombstones:       tombstones,
			Topics:           topics,
		}
	}
	return struct {
		Producers []node `json:"producers"`
	}{nodes}, nil
}

// debugEntry is one /debug producer (L-HTTP-07); keys alphabetical.
type debugEntry struct {
	BroadcastAddress string `json:"broadcast_address"`
	Hostname         string `json:"hostname"`
	HTTPPort         int    `json:"http_port"`
	ID               string `json:"id"`
	LastUpdate       int64  `json:"last_update"`
	TCPPort          int    `json:"tcp_port"`
	Tombstoned       bool   `json:"tombstoned"`
	// UnixNano of the zero time.Time (-6795364578871345152) when never
	// tombstoned.
	TombstonedAt   int64  `json:"tombstoned_at"`
	TopologyRegion string `json:"topology_region"`
	TopologyZone   string `json:"topology_zone"`
	Version        string `json:"version"`
}

// L-HTTP-07
func (s *httpServer) debug(http.ResponseWriter, *http.Request, httprouter.Params) (interface{}, error) {
	dump := s.l.db.Dump()
	out := make(map[string][]debugEntry, len(dump))
	for k, ps := range dump {
		entries := make([]debugEntry, len(ps))
		for i, p := range ps {
			pi := p.Peer
			entries[i] = debugEntry{
				BroadcastAddress: pi.BroadcastAddress,
				Hostname:         pi.Hostname,
				HTTPPort:         pi.HTTPPort,
				ID:               pi.id,
				LastUpdate:       pi.lastUpdate.Load(),
				TCPPort:          pi.TCPPort,
				Tombstoned:       p.Tombstoned,
				TombstonedAt:     p.TombstonedAt.UnixNano(),
				TopologyRegion:   pi.TopologyRegion,
				TopologyZone:     pi.TopologyZone,
				Version:          pi.Version,
			}
		}
		out[k.String()] = entries
	}
	return out, nil
}

// L-HTTP-08
func (s *httpServer) createTopic(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
	p, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, err
	}
	topic, err := httpapi.GetTopicArg(p)
	if err != nil {
		return nil, err
	}
	s.l.logf(lg.INFO, "DB: adding topic(%s)", topic)
	s.l.db.AddRegistration(TopicRegistration(topic))
	return nil, nil
}

// L-HTTP-09: the topic name is not validated and is matched literally.
func (s *httpServer) deleteTopic(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
	_, topic, err := rawTopic(req)
	if err != nil {
		return nil, err
	}
	channels, existed := s.l.db.RemoveTopic(topic)
	for _, c := range channels {
		s.l.logf(lg.INFO, "DB: removing channel(%s) from topic(%s)", c, topic)
	}
	if existed {
		s.l.logf(lg.INFO, "DB: removing topic(%s)", topic)
	}
	return nil, nil
}

// L-HTTP-10
func (s *httpServer) createChannel(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
	p, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, err
	}
	topic, channel, err := httpapi.GetTopicChannelArgs(p)
	if err != nil {
		return nil, err
	}
	s.l.logf(lg.INFO, "DB: adding channel(%s) in topic(%s)", channel, topic)
	s.l.db.AddRegistration(ChannelRegistration(topic, channel))
	s.l.logf(lg.INFO, "DB: adding topic(%s)", topic)
	s.l.db.AddRegistration(TopicRegistration(topic))
	return nil, nil
}

// L-HTTP-11
func (s *httpServer) deleteChannel(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
	p, err := httpapi.NewReqParams(req)
	if err != nil {
		return nil, err
	}
	topic, channel, err := httpapi.GetTopicChannelArgs(p)
	if err != nil {
		return nil, err
	}
	if !s.l.db.RemoveRegistration(ChannelRegistration(topic, channel)) {
		return nil, errChannelNotFound
	}
	s.l.logf(lg.INFO, "DB: removing channel(%s) from topic(%s)", channel, topic)
	return nil, nil
}

// L-HTTP-12
func (s *httpServer) tombstoneTopicProducer(_ http.ResponseWriter, req *http.Request, _ httprouter.Params) (interface{}, error) {
	p, topic, err := rawTopic(req)
	if err != nil {
		return nil, err
	}
	node, ok := p.Get("node")
	if !ok {
		return nil, errMissingNode
	}
	s.l.logf(lg.INFO, "DB: setting tombstone for producer@%s of topic(%s)", node, topic)
	s.l.db.Tombstone(topic, node, time.Now())
	return nil, nil
}
