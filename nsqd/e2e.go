package nsqd

import (
	"fmt"
	"time"

	"github.com/ournsq/nsq/internal/quantile"
)

// End-to-end processing latency (D-E2E-01/02): on every successful FIN a
// channel records now − the message's publish timestamp in a windowed
// quantile estimator; a topic reports the merge of its channels.

// validateE2EPercentiles is the start-up check of D-CLI-46.
func validateE2EPercentiles(opts *Options) error {
	for _, p := range opts.E2EProcessingLatencyPercentiles {
		if !(p > 0 && p <= 1) {
			return fmt.Errorf("invalid E2E processing latency percentile: %v", p)
		}
	}
	return nil
}

// newE2ELatency returns nil (feature off) when no percentile is configured.
func newE2ELatency(opts *Options) *quantile.Quantile {
	if len(opts.E2EProcessingLatencyPercentiles) == 0 {
		return nil
	}
	return quantile.New(opts.E2EProcessingLatencyWindowTime, opts.E2EProcessingLatencyPercentiles)
}

// recordE2E records a finished message's latency in ns.
func (c *Channel) recordE2E(m *Message) {
	if c.e2eLatency == nil {
		return
	}
	c.e2eLatency.Insert(float64(time.Now().UnixNano() - m.Timestamp))
}

func e2eFromResult(r quantile.Result) E2ELatency {
	return E2ELatency{Count: r.Count, Percentiles: r.Percentiles}
}

// e2eStats is the channel's e2e_processing_latency: {0, null} when off.
func (c *Channel) e2eStats() E2ELatency {
	if c.e2eLatency == nil {
		return E2ELatency{}
	}
	return e2eFromResult(c.e2eLatency.Result())
}

// e2eStats merges every channel of the topic (whatever /stats filters);
// {0, null} when off or when the topic has no channel.
func (t *Topic) e2eStats() E2ELatency {
	chans := t.channels()
	qs := make([]*quantile.Quantile, 0, len(chans))
	for _, c := range chans {
		qs = append(qs, c.e2eLatency)
	}
	return e2eFromResult(quantile.Aggregate(qs))
}
