package quantile

import (
	"sync"
	"time"
)

// Quantile tracks target quantiles over a sliding window (D-E2E-01). It
// keeps two streams, each collecting for half the window: when the current
// half is over, the older stream is cleared and becomes the current one.
// Results merge both, so they cover between W/2 and W of history. It is
// safe for concurrent use.
type Quantile struct {
	mu          sync.Mutex
	percentiles []float64
	half        time.Duration
	streams     [2]*Stream
	cur         int
	nextRotate  time.Time
	now         func() time.Time // for tests
}

// New tracks percentiles (each in (0, 1]; reported in the given order) over
// window. A non-positive window never expires observations.
func New(window time.Duration, percentiles []float64) *Quantile {
	return newQuantile(window, percentiles, time.Now)
}

func newQuantile(window time.Duration, percentiles []float64, now func() time.Time) *Quantile {
	q := &Quantile{
		percentiles: append([]float64(nil), percentiles...),
		half:        window / 2,
		now:         now,
	}
	for i := range q.streams {
		q.streams[i] = NewStream(percentiles...)
	}
	q.nextRotate = now().Add(q.half)
	return q
}

// Percentiles are the tracked quantiles in their configured order.
func (q *Quantile) Percentiles() []float64 { return q.percentiles }

// Insert records one observation (e.g. a latency in ns).
func (q *Quantile) Insert(v float64) {
	q.mu.Lock()
	q.rotate()
	q.streams[q.cur].Insert(v)
	q.mu.Unlock()
}

// rotate drops the half-window that has fallen out of the window.
func (q *Quantile) rotate() {
	if q.half <= 0 {
		return
	}
	now := q.now()
	if now.Before(q.nextRotate) {
		return
	}
	if !now.Before(q.nextRotate.Add(q.half)) {
		// idle for a whole window or more: everything is stale
		q.streams[0].Reset()
		q.streams[1].Reset()
		q.nextRotate = now.Add(q.half)
		return
	}
	q.cur ^= 1
	q.streams[q.cur].Reset()
	q.nextRotate = q.nextRotate.Add(q.half)
}

// mergeInto adds both windows to s.
func (q *Quantile) mergeInto(s *Stream) {
	q.mu.Lock()
	q.rotate()
	s.Merge(q.streams[0])
	s.Merge(q.streams[1])
	q.mu.Unlock()
}

// Result is a snapshot: the number of observations in the window and the
// value of every percentile, in configured order, as
// {"quantile": q, "value": v} (the /stats JSON shape, D-E2E-02).
type Result struct {
	Count       int
	Percentiles []map[string]float64
}

// Result summarises the current window.
func (q *Quantile) Result() Result {
	return Aggregate([]*Quantile{q})
}

// Aggregate merges the windows of several quantiles tracking the same
// percentiles (a topic's channels, D-E2E-01); nil entries are skipped. The
// percentiles are those of the first non-nil entry. With no entries at all
// the result is empty: Count 0 and nil Percentiles.
func Aggregate(qs []*Quantile) Result {
	var merged *Stream
	var percentiles []float64
	for _, q := range qs {
		if q == nil {
			continue
		}
		if merged == nil {
			percentiles = q.percentiles
			merged = NewStream(percentiles...)
		}
		q.mergeInto(merged)
	}
	if merged == nil {
		return Result{}
	}
	res := Result{
		Count:       merged.Count(),
		Percentiles: make([]map[string]float64, len(percentiles)),
	}
	for i, p := range percentiles {
		res.Percentiles[i] = map[string]float64{"quantile": p, "value": merged.Query(p)}
	}
	return res
}
