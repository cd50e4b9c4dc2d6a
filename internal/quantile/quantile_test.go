package quantile

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// exact is the nearest-rank quantile of 1..n.
func exact(q float64, n int) float64 { return math.Max(1, math.Ceil(q*float64(n))) }

func TestStreamAccuracy(t *testing.T) {
	qs := []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1}
	for _, n := range []int{1, 7, 100, 1000, 100000} {
		s := NewStream(qs...)
		for _, v := range rand.Perm(n) {
			s.Insert(float64(v + 1))
		}
		if s.Count() != n {
			t.Fatalf("n=%d: count %d", n, s.Count())
		}
		for _, q := range qs {
			got, want := s.Query(q), exact(q, n)
			// targeted error: eps*rank, at least one rank
			tol := math.Max(1, 2*DefaultEpsilon*float64(n))
			if math.Abs(got-want) > tol {
				t.Errorf("n=%d q=%v: got %v, want %v±%v", n, q, got, want, tol)
			}
		}
		if got := s.Query(1); got != float64(n) {
			t.Errorf("n=%d: max %v", n, got)
		}
	}
}

func TestStreamCompresses(t *testing.T) {
	s := NewStream(0.5, 0.99)
	for i := 0; i < 200000; i++ {
		s.Insert(rand.Float64())
	}
	s.flush()
	if len(s.samples) > 20000 {
		t.Errorf("summary keeps %d samples for 200000 values", len(s.samples))
	}
}

func TestStreamEmptyAndReset(t *testing.T) {
	s := NewStream(0.99)
	if s.Query(0.99) != 0 || s.Count() != 0 {
		t.Error("empty stream not 0")
	}
	s.Insert(5)
	if s.Query(0.99) != 5 || s.Count() != 1 {
		t.Errorf("one value: %v %d", s.Query(0.99), s.Count())
	}
	s.Reset()
	if s.Query(0.99) != 0 || s.Count() != 0 {
		t.Error("reset stream not 0")
	}
}

func TestStreamMerge(t *testing.T) {
	a, b := NewStream(0.5, 0.99, 1), NewStream(0.5, 0.99, 1)
	perm := rand.Perm(20000)
	for i, v := range perm {
		if i%3 == 0 {
			a.Insert(float64(v + 1))
		} else {
			b.Insert(float64(v + 1))
		}
	}
	m := NewStream(0.5, 0.99, 1)
	m.Merge(a)
	m.Merge(b)
	if m.Count() != 20000 {
		t.Fatalf("merged count %d", m.Count())
	}
	for _, q := range []float64{0.5, 0.99, 1} {
		got, want := m.Query(q), exact(q, 20000)
		if math.Abs(got-want) > 0.01*20000 {
			t.Errorf("merged q=%v: %v, want ~%v", q, got, want)
		}
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestQuantileResultShape(t *testing.T) {
	q := New(time.Minute, []float64{1.0, 0.99, 0.5})
	r := q.Result()
	if r.Count != 0 || len(r.Percentiles) != 3 {
		t.Fatalf("empty result %+v", r)
	}
	for i, want := range []float64{1.0, 0.99, 0.5} {
		if r.Percentiles[i]["quantile"] != want || r.Percentiles[i]["value"] != 0 {
			t.Errorf("percentile %d = %v", i, r.Percentiles[i])
		}
	}
	for i := 1; i <= 100; i++ {
		q.Insert(float64(i))
	}
	r = q.Result()
	if r.Count != 100 {
		t.Errorf("count %d", r.Count)
	}
	for i, want := range []float64{100, 99, 50} {
		if got := r.Percentiles[i]["value"]; got != want {
			t.Errorf("q=%v: %v, want %v", r.Percentiles[i]["quantile"], got, want)
		}
	}
}

// TestQuantileWindow: two half-window streams rotate, so values stay
// visible for between W/2 and W (D-E2E-01).
func TestQuantileWindow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	q := newQuantile(10*time.Second, []float64{1}, clk.now)

	q.Insert(100) // first half
	clk.add(4 * time.Second)
	if r := q.Result(); r.Count != 1 || r.Percentiles[0]["value"] != 100 {
		t.Fatalf("t=4s: %+v", r)
	}
	clk.add(2 * time.Second) // t=6s: second half, the first is still kept
	q.Insert(7)
	if r := q.Result(); r.Count != 2 || r.Percentiles[0]["value"] != 100 {
		t.Fatalf("t=6s: %+v", r)
	}
	clk.add(5 * time.Second) // t=11s: the first half expires
	if r := q.Result(); r.Count != 1 || r.Percentiles[0]["value"] != 7 {
		t.Fatalf("t=11s: %+v", r)
	}
	clk.add(30 * time.Second) // idle for longer than the window
	if r := q.Result(); r.Count != 0 || r.Percentiles[0]["value"] != 0 {
		t.Fatalf("t=41s: %+v", r)
	}
	q.Insert(3)
	if r := q.Result(); r.Count != 1 || r.Percentiles[0]["value"] != 3 {
		t.Fatalf("after idle: %+v", r)
	}
}

func TestAggregate(t *testing.T) {
	if r := Aggregate(nil); r.Count != 0 || r.Percentiles != nil {
		t.Errorf("no quantiles: %+v", r)
	}
	a := New(time.Minute, []float64{1, 0.5})
	b := New(time.Minute, []float64{1, 0.5})
	for i := 1; i <= 50; i++ {
		a.Insert(float64(i))
		b.Insert(float64(i + 50))
	}
	r := Aggregate([]*Quantile{a, nil, b})
	if r.Count != 100 || r.Percentiles[0]["value"] != 100 || r.Percentiles[1]["value"] != 50 {
		t.Errorf("aggregate %+v", r)
	}
	// aggregating leaves the inputs intact
	if ra := a.Result(); ra.Count != 50 || ra.Percentiles[0]["value"] != 50 {
		t.Errorf("a after aggregate %+v", ra)
	}
}

func TestQuantileConcurrent(t *testing.T) {
	q := New(time.Second, []float64{0.99})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				q.Insert(float64(i))
				if i%100 == 0 {
					q.Result()
				}
			}
		}()
	}
	wg.Wait()
	if r := q.Result(); r.Count != 8000 {
		t.Errorf("count %d", r.Count)
	}
}
