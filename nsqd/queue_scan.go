package nsqd

import (
	"sync"
	"sync/atomic"
	"time"
)

// The queue scanner expires in-flight timeouts and due deferred messages
// (D-SCAN-01, D-INFL-02, D-DEF-01).
//
// NSQ samples 20 random channels every 100 ms, so timeouts fire up to
// ~100 ms late (and ~5 s late on a new channel, Q-14), and an idle node
// wakes ten times a second. Ours keeps NSQ's loop and worker pool but is
// driven by deadlines: every channel keeps nextDue (its earliest deadline),
// the loop sleeps until the earliest one over all channels, and a channel
// that gets an earlier deadline wakes it. --queue-scan-interval only
// bounds how long the loop sleeps; --queue-scan-refresh-interval re-reads
// the channel list (new channels are added at once anyway).

// queueScanner is the state shared between the scan loop and channels.
type queueScanner struct {
	wake chan struct{}
	// target is when the loop will wake next (unix ns); 0 while it is
	// scanning, when every new deadline must poke it.
	target atomic.Int64
}

func newQueueScanner() queueScanner {
	return queueScanner{wake: make(chan struct{}, 1)}
}

// wakeIfBefore pokes the loop if t is earlier than its planned wake-up.
func (s *queueScanner) wakeIfBefore(t int64) {
	if tgt := s.target.Load(); tgt == 0 || t < tgt {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (n *NSQD) queueScanLoop() {
	opts := n.getOpts()
	pool := &scanWorkerPool{
		workCh:  make(chan *Channel, opts.QueueScanSelectionCount),
		closeCh: make(chan struct{}),
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	refreshTicker := time.NewTicker(opts.QueueScanRefreshInterval)
	defer func() {
		timer.Stop()
		refreshTicker.Stop()
		pool.stopAll()
	}()

	channels := n.channels()
	pool.resize(len(channels), opts.QueueScanWorkerPoolMax)
	var due []*Channel

	for {
		n.scanner.target.Store(0)
		now := time.Now().UnixNano()
		var next int64
		due = due[:0]
		for _, c := range channels {
			d := c.nextDue.Load()
			switch {
			case d == 0:
			case d <= now:
				due = append(due, c)
			case next == 0 || d < next:
				next = d
			}
		}
		if len(due) > 0 {
			pool.process(due)
			for _, c := range due {
				if d := c.nextDue.Load(); d != 0 && (next == 0 || d < next) {
					next = d
				}
			}
		}

		sleep := opts.QueueScanInterval
		if next != 0 {
			sleep = min(sleep, max(time.Duration(next-time.Now().UnixNano()), 0))
		}
		n.scanner.target.Store(time.Now().Add(sleep).UnixNano())
		timer.Reset(sleep)

		select {
		case <-timer.C:
		case <-n.scanner.wake:
			timer.Stop()
		case <-n.channelSetChanged:
			timer.Stop()
			channels = n.channels()
			pool.resize(len(channels), opts.QueueScanWorkerPoolMax)
		case <-refreshTicker.C:
			timer.Stop()
			channels = n.channels()
			pool.resize(len(channels), opts.QueueScanWorkerPoolMax)
		case <-n.exitChan:
			return
		}
	}
}

// scanWorkerPool is owned by queueScanLoop: clamp(channels/4, 1, max)
// workers (D-SCAN-01); workers exit via closeCh (one token per worker to
// shrink) and are waited for on stopAll.
type scanWorkerPool struct {
	workCh  chan *Channel
	closeCh chan struct{}
	size    int
	wg      sync.WaitGroup // running workers
	batch   sync.WaitGroup // channels of the current batch
}

// resize keeps clamp(numChannels/4, 1, maxWorkers) workers.
func (p *scanWorkerPool) resize(numChannels, maxWorkers int) {
	ideal := min(max(int(float64(numChannels)*0.25), 1), maxWorkers)
	for p.size < ideal {
		p.size++
		p.wg.Add(1)
		go p.worker()
	}
	for p.size > ideal {
		p.closeCh <- struct{}{}
		p.size--
	}
}

// process expires what is due on every channel of due and waits for it.
func (p *scanWorkerPool) process(due []*Channel) {
	p.batch.Add(len(due))
	for _, c := range due {
		p.workCh <- c
	}
	p.batch.Wait()
}

func (p *scanWorkerPool) stopAll() {
	close(p.closeCh)
	p.wg.Wait()
}

func (p *scanWorkerPool) worker() {
	defer p.wg.Done()
	for {
		select {
		case c := <-p.workCh:
			now := time.Now().UnixNano()
			c.processInFlightQueue(now)
			c.processDeferredQueue(now)
			c.refreshDue()
			p.batch.Done()
		case <-p.closeCh:
			return
		}
	}
}
