// Package quantile estimates targeted quantiles of a stream of values over a
// sliding time window (nsqd's end-to-end processing latency, D-E2E-01).
//
// Stream is a biased ("targeted") quantile summary after Cormode, Korn,
// Muthukrishnan and Srivastava, "Effective computation of biased quantiles
// over data streams" (ICDE 2005): it keeps a sorted list of samples, each
// standing for a run of observed values, and merges neighbouring samples as
// long as the error bound of every target quantile allows it. Answers are
// approximate: the rank of the value returned for quantile q is within about
// eps*n of q*n (the maximum is exact).
package quantile

import (
	"math"
	"sort"
)

// DefaultEpsilon is the rank error allowed for every target quantile.
const DefaultEpsilon = 0.001

// bufferSize is how many raw values are collected before they are merged
// into the summary in one sorted pass.
const bufferSize = 500

type target struct {
	q   float64 // in (0, 1]
	eps float64
}

// sample stands for g observations whose largest value is v; delta bounds
// the uncertainty of its rank (rmax - rmin in the paper).
type sample struct {
	v     float64
	g     float64
	delta float64
}

// Stream is a targeted-quantile summary. It is not safe for concurrent use.
type Stream struct {
	targets []target
	samples []sample
	buf     []float64
	n       float64
}

// NewStream returns a summary accurate for the given quantiles, each within
// (0, 1]; others are ignored.
func NewStream(quantiles ...float64) *Stream {
	s := &Stream{}
	for _, q := range quantiles {
		if q > 0 && q <= 1 {
			s.targets = append(s.targets, target{q: q, eps: DefaultEpsilon})
		}
	}
	return s
}

// Insert adds one observation.
func (s *Stream) Insert(v float64) {
	s.buf = append(s.buf, v)
	if len(s.buf) >= bufferSize {
		s.flush()
	}
}

// Count is the number of observations summarised.
func (s *Stream) Count() int { return int(s.n) + len(s.buf) }

// Reset forgets every observation.
func (s *Stream) Reset() {
	s.samples = s.samples[:0]
	s.buf = s.buf[:0]
	s.n = 0
}

// Merge adds the observations summarised by other (other is not changed
// apart from flushing its buffer).
func (s *Stream) Merge(other *Stream) {
	other.flush()
	s.flush()
	s.merge(other.samples)
}

// Query returns the estimated value at quantile q, 0 when empty.
func (s *Stream) Query(q float64) float64 {
	s.flush()
	if len(s.samples) == 0 {
		return 0
	}
	// the smallest rank that still satisfies q, widened by half the
	// allowed error so that a merged sample is not skipped needlessly
	t := math.Ceil(q * s.n)
	t += s.invariant(t) / 2
	p := s.samples[0]
	var r float64
	for _, c := range s.samples[1:] {
		r += p.g
		if r+c.g+c.delta > t {
			return p.v
		}
		p = c
	}
	return p.v
}

// invariant is f(r, n): how much rank uncertainty a sample at rank r may
// carry without breaking the error bound of any target.
func (s *Stream) invariant(r float64) float64 {
	m := math.MaxFloat64
	for _, t := range s.targets {
		var f float64
		if t.q*s.n <= r {
			f = 2 * t.eps * r / t.q
		} else {
			// q == 1 never limits ranks below n (division gives +Inf)
			f = 2 * t.eps * (s.n - r) / (1 - t.q)
		}
		m = min(m, f)
	}
	return m
}

// flush merges the buffered raw values into the summary.
func (s *Stream) flush() {
	if len(s.buf) == 0 {
		return
	}
	sort.Float64s(s.buf)
	in := make([]sample, len(s.buf))
	for i, v := range s.buf {
		in[i] = sample{v: v, g: 1}
	}
	s.buf = s.buf[:0]
	s.merge(in)
}

// merge inserts sorted samples into the summary in one linear pass, then
// compresses it.
func (s *Stream) merge(in []sample) {
	if len(in) == 0 {
		return
	}
	out := make([]sample, 0, len(s.samples)+len(in))
	var r float64 // rank of the next sample to be written
	j := 0
	insert := func(x sample, last bool) {
		// a new minimum or maximum keeps its own uncertainty (0 for raw
		// values), anything in between may be off by up to f(r, n)
		if len(out) > 0 && !last {
			x.delta = max(x.delta, math.Floor(s.invariant(r))-1)
		}
		out = append(out, x)
		r += x.g
		s.n += x.g
	}
	for _, c := range s.samples {
		for j < len(in) && in[j].v < c.v {
			insert(in[j], false)
			j++
		}
		out = append(out, c)
		r += c.g
	}
	for ; j < len(in); j++ {
		insert(in[j], true)
	}
	s.samples = out
	s.compress()
}

// compress merges each sample into its right neighbour where the error
// bound allows, walking from the largest value down.
func (s *Stream) compress() {
	if len(s.samples) < 2 {
		return
	}
	w := len(s.samples) - 1 // samples[w] is the sample being grown
	r := s.n - s.samples[w].g
	for i := len(s.samples) - 2; i >= 0; i-- {
		c := s.samples[i]
		r -= c.g // rank of c
		x := &s.samples[w]
		if c.g+x.g+x.delta <= s.invariant(r) {
			x.g += c.g
			continue
		}
		w--
		s.samples[w] = c
	}
	s.samples = s.samples[w:]
}
