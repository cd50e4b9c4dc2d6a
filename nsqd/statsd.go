package nsqd

import (
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/statsd"
)

// statsd push loop (D-STATSD-01..04): every --statsd-interval the stats
// (without clients) are turned into counter and gauge lines, packed into
// datagrams of at most --statsd-udp-packet-size bytes and sent to
// --statsd-address spread over the interval minus one second.

// validateStatsdOptions rejects an interval the push loop's ticker cannot
// use (NSQ panics instead).
func validateStatsdOptions(opts *Options) error {
	if opts.StatsdAddress != "" && opts.StatsdInterval <= 0 {
		return errors.New("--statsd-interval must be > 0")
	}
	return nil
}

// statsdPrefix is --statsd-prefix with "%s" expanded to the host key, as
// sent to statsd and reported by GET /config/statsd_prefix (D-CLI-43).
func statsdPrefix(opts *Options) string {
	return statsd.ExpandPrefix(opts.StatsdPrefix, opts.BroadcastAddress, opts.BroadcastHTTPPort)
}

// statsdCounters are the counter values of the last successful push.
type statsdCounters struct {
	topics map[string]statsdTopicCounters
	gcRuns uint32
}

type statsdTopicCounters struct {
	messageCount, messageBytes uint64
	channels                   map[string]statsdChannelCounters
}

type statsdChannelCounters struct {
	messageCount, requeueCount, timeoutCount uint64
}

// delta is cur − last; a counter that went down (the topic or channel was
// deleted and re-created) restarts from 0.
func delta(cur, last uint64) int64 {
	if cur < last {
		return int64(cur)
	}
	return int64(cur - last)
}

func (n *NSQD) statsdLoop() {
	interval := n.getOpts().StatsdInterval
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last statsdCounters
	for {
		select {
		case <-n.exitChan:
			return
		case <-ticker.C:
			if next, ok := n.pushStatsd(last, interval); ok {
				last = next
			}
		}
	}
}

// pushStatsd sends one round of metrics and returns the counters to diff
// the next round against; ok is false when nothing could be sent.
func (n *NSQD) pushStatsd(last statsdCounters, interval time.Duration) (statsdCounters, bool) {
	opts := n.getOpts()
	addr := opts.StatsdAddress
	conn, err := net.DialTimeout("udp", addr, time.Second)
	if err != nil {
		n.logf(lg.ERROR, "failed to create UDP socket to statsd(%s)", addr)
		return last, false
	}
	defer conn.Close()
	n.logf(lg.INFO, "STATSD: pushing stats to %s", addr)

	client := statsd.NewClient(statsdPrefix(opts), opts.StatsdUDPPacketSize)
	next := buildStatsdMetrics(client, n.GetStats("", "", false), last, opts)
	if opts.StatsdMemStats {
		ms := getMemStats()
		client.Gauge("mem.heap_objects", int64(ms.HeapObjects))
		client.Gauge("mem.heap_idle_bytes", int64(ms.HeapIdleBytes))
		client.Gauge("mem.heap_in_use_bytes", int64(ms.HeapInUseBytes))
		client.Gauge("mem.heap_released_bytes", int64(ms.HeapReleasedBytes))
		client.Gauge("mem.gc_pause_usec_100", int64(ms.GCPauseUsec100))
		client.Gauge("mem.gc_pause_usec_99", int64(ms.GCPauseUsec99))
		client.Gauge("mem.gc_pause_usec_95", int64(ms.GCPauseUsec95))
		client.Gauge("mem.next_gc_bytes", int64(ms.NextGCBytes))
		client.Count("mem.gc_runs", delta(uint64(ms.GCTotalRuns), uint64(last.gcRuns)))
		next.gcRuns = ms.GCTotalRuns
	}

	// spread the datagrams over the interval, keeping a second of slack
	// before the next push; exit abandons the rest
	if err := statsd.Send(conn, client.Packets(), interval-time.Second, n.exitChan); err != nil {
		n.logf(lg.ERROR, "STATSD: failed to send to %s - %s", addr, err)
	}
	return next, true
}

// buildStatsdMetrics writes the topic and channel metrics of D-STATSD-03
// (topics and channels in name order, as GetStats returns them) and returns
// their current counters.
func buildStatsdMetrics(client *statsd.Client, topics []TopicStats, last statsdCounters, opts *Options) statsdCounters {
	next := statsdCounters{topics: make(map[string]statsdTopicCounters, len(topics))}
	skip := func(name string) bool {
		return opts.StatsdExcludeEphemeral && strings.HasSuffix(name, "#ephemeral")
	}
	for _, t := range topics {
		if skip(t.TopicName) {
			continue
		}
		lt := last.topics[t.TopicName]
		nt := statsdTopicCounters{
			messageCount: t.MessageCount,
			messageBytes: t.MessageBytes,
			channels:     make(map[string]statsdChannelCounters, len(t.Channels)),
		}
		key := "topic." + t.TopicName + "."
		client.Count(key+"message_count", delta(t.MessageCount, lt.messageCount))
		client.Count(key+"message_bytes", delta(t.MessageBytes, lt.messageBytes))
		client.Gauge(key+"depth", t.Depth)
		client.Gauge(key+"backend_depth", t.BackendDepth)
		e2eGauges(client, key, t.E2EProcessingLatency)

		for _, c := range t.Channels {
			if skip(c.ChannelName) {
				continue
			}
			lc := lt.channels[c.ChannelName]
			nt.channels[c.ChannelName] = statsdChannelCounters{
				messageCount: c.MessageCount,
				requeueCount: c.RequeueCount,
				timeoutCount: c.TimeoutCount,
			}
			ckey := key + "channel." + c.ChannelName + "."
			client.Count(ckey+"message_count", delta(c.MessageCount, lc.messageCount))
			client.Gauge(ckey+"depth", c.Depth)
			client.Gauge(ckey+"backend_depth", c.BackendDepth)
			client.Gauge(ckey+"in_flight_count", int64(c.InFlightCount))
			client.Gauge(ckey+"deferred_count", int64(c.DeferredCount))
			client.Count(ckey+"requeue_count", delta(c.RequeueCount, lc.requeueCount))
			client.Count(ckey+"timeout_count", delta(c.TimeoutCount, lc.timeoutCount))
			client.Gauge(ckey+"clients", int64(c.ClientCount))
			e2eGauges(client, ckey, c.E2EProcessingLatency)
		}
		next.topics[t.TopicName] = nt
	}
	return next
}

// e2eGauges writes e2e_processing_latency_<round(q×100)> in integer ns for
// every configured percentile (D-E2E-02).
func e2eGauges(client *statsd.Client, key string, e E2ELatency) {
	for _, p := range e.Percentiles {
		name := key + "e2e_processing_latency_" + strconv.FormatFloat(math.Round(p["quantile"]*100), 'f', 0, 64)
		client.Gauge(name, int64(p["value"]))
	}
}
