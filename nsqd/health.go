package nsqd

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// Health while the data path cannot be written (disk full, read-only,
// removed): docs/robustness-crash.md, part 5.
//
// NSQ sets the health flag when a disk queue write fails and clears it at
// the next successful one (D-QUEUE-04), but keeps accepting publishes into
// memory meanwhile, and a node that gets no more writes stays "NOK" for
// ever. Here:
//
//   - while the flag is set, PUB, MPUB, DPUB and /pub, /mpub are refused
//     for every topic, new or existing (E_PUB_FAILED / 500 INTERNAL_ERROR,
//     the cause is the health error), even if the memory queue has room:
//     a publisher learns at once that nothing is durable and can go
//     elsewhere. Ephemeral topics, which never touch the disk, still work;
//   - a background probe (healthLoop, started by Main) tries a small write,
//     fsync and remove in the data path every second, only while the flag
//     is set, and clears the flag when that works: /ping and the
//     publishers recover by themselves when space returns;
//   - a refused publish also probes, at most once per inlineProbeGap, so
//     that recovery is seen at once by a busy publisher.

const (
	defaultProbeInterval = time.Second
	inlineProbeGap       = 100 * time.Millisecond
	probeFileName        = ".nsqd-write-probe"
)

// healthProber is the recovery side of the health flag. The zero value
// works; tests replace the probe and the interval.
type healthProber struct {
	once     sync.Once
	wake     chan struct{}
	probe    atomic.Pointer[func(dataPath string) error]
	interval atomic.Int64 // ns; 0 = defaultProbeInterval

	mu    sync.Mutex // one probe at a time
	last  time.Time  // start of the last probe, guarded by mu
	calls atomic.Int64
}

func (p *healthProber) wakeChan() chan struct{} {
	p.once.Do(func() { p.wake = make(chan struct{}, 1) })
	return p.wake
}

// kick wakes healthLoop (the flag was set).
func (p *healthProber) kick() {
	select {
	case p.wakeChan() <- struct{}{}:
	default:
	}
}

func (p *healthProber) period() time.Duration {
	if d := time.Duration(p.interval.Load()); d > 0 {
		return d
	}
	return defaultProbeInterval
}

func (p *healthProber) probeFunc() func(string) error {
	if f := p.probe.Load(); f != nil {
		return *f
	}
	return probeDataPath
}

// probeDataPath writes, syncs and removes a 4 KiB file in the data path.
func probeDataPath(dataPath string) error {
	fn := filepath.Join(dataPath, probeFileName)
	f, err := os.OpenFile(fn, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0600)
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(fn); err == nil && !os.IsNotExist(rerr) {
		err = rerr
	}
	return err
}

// healthLoop probes the data path while nsqd is unhealthy and sleeps on
// its wake channel otherwise. Run by Main until exit.
func (n *NSQD) healthLoop() {
	p := &n.prober
	for {
		select {
		case <-n.exitChan:
			return
		case <-p.wakeChan():
		}
		for !n.IsHealthy() {
			t := time.NewTimer(p.period())
			select {
			case <-n.exitChan:
				t.Stop()
				return
			case <-t.C:
			}
			n.probeHealth(0)
		}
	}
}

// probeHealth tries a write in the data path if nsqd is unhealthy (unless
// another probe runs, or the last one started less than minGap ago) and
// clears the flag when it works, unless a newer failure came meanwhile.
// It reports whether nsqd is healthy.
func (n *NSQD) probeHealth(minGap time.Duration) bool {
	p := &n.prober
	if n.IsHealthy() {
		return true
	}
	if !p.mu.TryLock() {
		return n.IsHealthy()
	}
	defer p.mu.Unlock()
	st := n.health.Load()
	if st.err == nil {
		return true
	}
	now := time.Now()
	if minGap > 0 && now.Sub(p.last) < minGap {
		return false
	}
	p.last = now
	p.calls.Add(1)
	dataPath := n.getOpts().DataPath
	if err := p.probeFunc()(dataPath); err != nil {
		n.logf(lg.DEBUG, "NSQ: data path %s still not writable - %s", dataPath, err)
		return false
	}
	if n.health.CompareAndSwap(st, &healthState{}) {
		n.logf(lg.INFO, "NSQ: data path %s is writable again; healthy (was: %s)", dataPath, st.err)
	}
	return n.IsHealthy()
}

// publishError is why a publish to a topic that may touch the disk must be
// refused now: the health error, unless a probe shows the data path
// writable again.
func (n *NSQD) publishError() error {
	if n.IsHealthy() || n.probeHealth(inlineProbeGap) {
		return nil
	}
	return n.health.Load().err
}
