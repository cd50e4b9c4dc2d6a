package nsqd

import (
	"fmt"
	"net"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stats snapshots are taken topic by topic and channel by channel under
// short read locks; no global lock is held while they are encoded, so the
// message flow never stops for /stats.

// TopicStats is one topic in /stats; field order is the JSON key order
// (D-HTTP-19).
type TopicStats struct {
	TopicName    string         `json:"topic_name"`
	Channels     []ChannelStats `json:"channels"`
	Depth        int64          `json:"depth"`
	BackendDepth int64          `json:"backend_depth"`
	MessageCount uint64         `json:"message_count"`
	MessageBytes uint64         `json:"message_bytes"`
	Paused       bool           `json:"paused"`

	E2EProcessingLatency E2ELatency `json:"e2e_processing_latency"`
}

// ChannelStats is one channel in /stats (D-HTTP-20).
type ChannelStats struct {
	ChannelName         string        `json:"channel_name"`
	Depth               int64         `json:"depth"`
	BackendDepth        int64         `json:"backend_depth"`
	InFlightCount       int           `json:"in_flight_count"`
	DeferredCount       int           `json:"deferred_count"`
	MessageCount        uint64        `json:"message_count"`
	ZoneLocalMsgCount   uint64        `json:"zone_local_msg_count,omitempty"`
	RegionLocalMsgCount uint64        `json:"region_local_msg_count,omitempty"`
	GlobalMsgCount      uint64        `json:"global_msg_count,omitempty"`
	RequeueCount        uint64        `json:"requeue_count"`
	TimeoutCount        uint64        `json:"timeout_count"`
	ClientCount         int           `json:"client_count"`
	Clients             []ClientStats `json:"clients"`
	Paused              bool          `json:"paused"`

	E2EProcessingLatency E2ELatency `json:"e2e_processing_latency"`
}

// E2ELatency is the end-to-end processing latency summary (D-E2E-02);
// Percentiles is null until percentiles are configured.
type E2ELatency struct {
	Count       int                  `json:"count"`
	Percentiles []map[string]float64 `json:"percentiles"`
}

// PubCount is one entry of a producer's pub_counts.
type PubCount struct {
	Topic string `json:"topic"`
	Count uint64 `json:"count"`
}

// ClientStats is one consumer or producer connection (D-HTTP-21).
type ClientStats struct {
	ClientID            string     `json:"client_id"`
	Hostname            string     `json:"hostname"`
	Version             string     `json:"version"`
	RemoteAddress       string     `json:"remote_address"`
	State               int32      `json:"state"`
	ReadyCount          int64      `json:"ready_count"`
	InFlightCount       int64      `json:"in_flight_count"`
	MessageCount        uint64     `json:"message_count"`
	ZoneLocalMsgCount   uint64     `json:"zone_local_msg_count,omitempty"`
	RegionLocalMsgCount uint64     `json:"region_local_msg_count,omitempty"`
	GlobalMsgCount      uint64     `json:"global_msg_count,omitempty"`
	FinishCount         uint64     `json:"finish_count"`
	RequeueCount        uint64     `json:"requeue_count"`
	ConnectTime         int64      `json:"connect_ts"`
	SampleRate          int32      `json:"sample_rate"`
	Deflate             bool       `json:"deflate"`
	Snappy              bool       `json:"snappy"`
	UserAgent           string     `json:"user_agent"`
	Authed              bool       `json:"authed,omitempty"`
	AuthIdentity        string     `json:"auth_identity,omitempty"`
	AuthIdentityURL     string     `json:"auth_identity_url,omitempty"`
	TopologyZone        string     `json:"topology_zone"`
	TopologyRegion      string     `json:"topology_region"`
	PubCounts           []PubCount `json:"pub_counts,omitempty"`
	TLS                 bool       `json:"tls"`
	CipherSuite         string     `json:"tls_cipher_suite"`
	TLSVersion          string     `json:"tls_version"`
	TLSNegotiatedProto  string     `json:"tls_negotiated_protocol"`
	TLSNegotiatedMutual bool       `json:"tls_negotiated_protocol_is_mutual"`
}

// Stats returns a snapshot of this client. pub_counts holds at most one
// entry — the filtered topic, or any one topic — as in NSQ.
func (c *clientV2) Stats(topicFilter string) ClientStats {
	c.metaLock.RLock()
	s := ClientStats{
		ClientID:            c.clientID,
		Hostname:            c.hostname,
		UserAgent:           c.userAgent,
		TopologyZone:        c.topologyZone,
		TopologyRegion:      c.topologyRegion,
		SampleRate:          c.statsSampleRate,
		TLSNegotiatedMutual: true,
	}
	for topic, pc := range c.pubCounts {
		if topicFilter != "" && topic != topicFilter {
			continue
		}
		s.PubCounts = []PubCount{{Topic: topic, Count: pc.n.Load()}}
		break
	}
	s.Authed, s.AuthIdentity, s.AuthIdentityURL = c.authStatsLocked()
	c.metaLock.RUnlock()

	s.Version = "V2"
	s.RemoteAddress = c.RemoteAddr().String()
	s.State = c.state.Load()
	s.ReadyCount = c.readyCount.Load()
	s.InFlightCount = c.inFlightCount.Load()
	s.MessageCount = c.messageCount.Load()
	s.FinishCount = c.finishCount.Load()
	s.RequeueCount = c.requeueCount.Load()
	s.ConnectTime = c.connectTime.Unix()
	c.layerStats(&s) // deflate, snappy, tls* (client_upgrade.go)
	return s
}

// isProducer reports whether the client has published at least once
// (D-TCP-44).
func (c *clientV2) isProducer() bool {
	c.metaLock.RLock()
	defer c.metaLock.RUnlock()
	return len(c.pubCounts) > 0
}

// String renders the client line of the text /stats (D-HTTP-24).
func (s ClientStats) String() string {
	connected := time.Since(time.Unix(s.ConnectTime, 0)).Truncate(time.Second)
	_, port, _ := net.SplitHostPort(s.RemoteAddress)
	id := s.Hostname + ":" + port + " " + s.UserAgent
	if len(s.PubCounts) > 0 {
		var total uint64
		topics := make([]string, 0, len(s.PubCounts))
		for _, pc := range s.PubCounts {
			total += pc.Count
			topics = append(topics, pc.Topic+"="+strconv.FormatUint(pc.Count, 10))
		}
		return fmt.Sprintf("[%s %-21s] msgs: %-8d topics: %s connected: %s",
			s.Version, id, total, strings.Join(topics, ","), connected)
	}
	return fmt.Sprintf("[%s %-21s] state: %d inflt: %-4d rdy: %-4d fin: %-8d re-q: %-8d msgs: %-8d connected: %s",
		s.Version, id, s.State, s.InFlightCount, s.ReadyCount, s.FinishCount,
		s.RequeueCount, s.MessageCount, connected)
}

// channelStats snapshots one channel.
func (c *Channel) stats(includeClients bool) ChannelStats {
	s := ChannelStats{
		ChannelName:          c.name,
		Depth:                c.Depth(),
		BackendDepth:         c.BackendDepth(),
		InFlightCount:        c.InFlightCount(),
		DeferredCount:        c.DeferredCount(),
		MessageCount:         c.messageCount.Load(),
		ZoneLocalMsgCount:    c.zoneLocalMsgCount.Load(),
		RegionLocalMsgCount:  c.regionLocalMsgCount.Load(),
		GlobalMsgCount:       c.globalMsgCount.Load(),
		RequeueCount:         c.requeueCount.Load(),
		TimeoutCount:         c.timeoutCount.Load(),
		Paused:               c.IsPaused(),
		E2EProcessingLatency: c.e2eStats(),
	}
	c.RLock()
	s.ClientCount = len(c.clients)
	var clients []*clientV2
	if includeClients {
		clients = make([]*clientV2, 0, len(c.clients))
		for _, cl := range c.clients {
			if v2, ok := cl.(*clientV2); ok {
				clients = append(clients, v2)
			}
		}
	}
	c.RUnlock()
	if includeClients {
		s.Clients = make([]ClientStats, 0, len(clients))
		for _, cl := range clients {
			s.Clients = append(s.Clients, cl.Stats(c.topicName))
		}
	}
	return s
}

// GetStats snapshots topics (sorted by name) and their channels. An empty
// topic name means all topics; channel filters the channels of that topic.
func (n *NSQD) GetStats(topicName, channelName string, includeClients bool) []TopicStats {
	n.RLock()
	var topics []*Topic
	if topicName == "" {
		topics = make([]*Topic, 0, len(n.topicMap))
		for _, t := range n.topicMap {
			topics = append(topics, t)
		}
	} else if t, ok := n.topicMap[topicName]; ok {
		topics = []*Topic{t}
	}
	n.RUnlock()
	sort.Slice(topics, func(i, j int) bool { return topics[i].name < topics[j].name })

	// null when no topic matched; [] when topics matched but the channel
	// filter dropped them all (D-HTTP-18, Q-19)
	if len(topics) == 0 {
		return nil
	}
	out := make([]TopicStats, 0, len(topics))
	for _, t := range topics {
		var chans []*Channel
		if channelName == "" {
			chans = t.channels()
		} else if c, err := t.GetExistingChannel(channelName); err == nil {
			chans = []*Channel{c}
		} else {
			continue
		}
		ts := TopicStats{
			TopicName:            t.name,
			Channels:             []ChannelStats{},
			Depth:                t.Depth(),
			BackendDepth:         t.BackendDepth(),
			MessageCount:         t.messageCount.Load(),
			MessageBytes:         t.messageBytes.Load(),
			Paused:               t.IsPaused(),
			E2EProcessingLatency: t.e2eStats(),
		}
		for _, c := range chans {
			ts.Channels = append(ts.Channels, c.stats(includeClients))
		}
		out = append(out, ts)
	}
	return out
}

// GetProducerStats lists connections that have published (D-TCP-44).
func (n *NSQD) GetProducerStats(topicFilter string) []ClientStats {
	n.tcpServer.mu.Lock()
	clients := make([]*clientV2, 0, len(n.tcpServer.clients))
	for _, c := range n.tcpServer.clients {
		clients = append(clients, c)
	}
	n.tcpServer.mu.Unlock()
	sort.Slice(clients, func(i, j int) bool { return clients[i].ID < clients[j].ID })

	var out []ClientStats
	for _, c := range clients {
		if c.isProducer() {
			out = append(out, c.Stats(topicFilter))
		}
	}
	return out
}

// MemoryStats is the /stats memory object (D-HTTP-23).
type MemoryStats struct {
	HeapObjects       uint64 `json:"heap_objects"`
	HeapIdleBytes     uint64 `json:"heap_idle_bytes"`
	HeapInUseBytes    uint64 `json:"heap_in_use_bytes"`
	HeapReleasedBytes uint64 `json:"heap_released_bytes"`
	GCPauseUsec100    uint64 `json:"gc_pause_usec_100"`
	GCPauseUsec99     uint64 `json:"gc_pause_usec_99"`
	GCPauseUsec95     uint64 `json:"gc_pause_usec_95"`
	NextGCBytes       uint64 `json:"next_gc_bytes"`
	GCTotalRuns       uint32 `json:"gc_total_runs"`
}

func getMemStats() MemoryStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	// percentiles over the recent GC pause ring buffer, in µs
	n := min(int(ms.NumGC), len(ms.PauseNs))
	pauses := make([]uint64, n)
	copy(pauses, ms.PauseNs[:n])
	sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
	pct := func(p float64) uint64 {
		if n == 0 {
			return 0
		}
		i := int(float64(n)*p) - 1
		i = max(0, min(i, n-1))
		return pauses[i] / 1000
	}
	return MemoryStats{
		HeapObjects:       ms.HeapObjects,
		HeapIdleBytes:     ms.HeapIdle,
		HeapInUseBytes:    ms.HeapInuse,
		HeapReleasedBytes: ms.HeapReleased,
		GCPauseUsec100:    pct(1.0),
		GCPauseUsec99:     pct(0.99),
		GCPauseUsec95:     pct(0.95),
		NextGCBytes:       ms.NextGC,
		GCTotalRuns:       ms.NumGC,
	}
}
