package nsqd

import (
	"math/rand/v2"
	"sync"
	"time"
)

// queueScanLoop expires in-flight timeouts and due deferred messages with
// Redis' probabilistic expiration algorithm (D-SCAN-01): every
// QueueScanInterval it samples QueueScanSelectionCount random channels and
// hands them to a worker pool; if more than QueueScanDirtyPercent of them
// had work, it samples again at once.
//
// Unlike NSQ, a new channel is added to the sampled list as soon as it is
// created (notifyChannelSetChanged), so its timeouts are not late.
func (n *NSQD) queueScanLoop() {
	opts := n.getOpts()
	workCh := make(chan *Channel, opts.QueueScanSelectionCount)
	responseCh := make(chan bool, opts.QueueScanSelectionCount)
	pool := &scanWorkerPool{workCh: workCh, responseCh: responseCh, closeCh: make(chan struct{})}

	workTicker := time.NewTicker(opts.QueueScanInterval)
	refreshTicker := time.NewTicker(opts.QueueScanRefreshInterval)
	defer func() {
		workTicker.Stop()
		refreshTicker.Stop()
		pool.stopAll()
	}()

	channels := n.channels()
	pool.resize(len(channels), opts.QueueScanWorkerPoolMax)

	for {
		select {
		case <-workTicker.C:
		case <-refreshTicker.C:
			channels = n.channels()
			pool.resize(len(channels), opts.QueueScanWorkerPoolMax)
			continue
		case <-n.channelSetChanged:
			channels = n.channels()
			pool.resize(len(channels), opts.QueueScanWorkerPoolMax)
			continue
		case <-n.exitChan:
			return
		}
		if len(channels) == 0 {
			continue
		}

		num := min(opts.QueueScanSelectionCount, len(channels))
		for {
			for _, i := range uniqRands(num, len(channels)) {
				workCh <- channels[i]
			}
			numDirty := 0
			for i := 0; i < num; i++ {
				if <-responseCh {
					numDirty++
				}
			}
			if float64(numDirty)/float64(num) <= opts.QueueScanDirtyPercent {
				break
			}
			select {
			case <-n.exitChan:
				return
			default:
			}
		}
	}
}

// scanWorkerPool is owned by queueScanLoop; workers exit via closeCh (one
// token per worker to shrink) and are waited for on stopAll.
type scanWorkerPool struct {
	workCh     chan *Channel
	responseCh chan bool
	closeCh    chan struct{}
	size       int
	wg         sync.WaitGroup
}

// resize keeps clamp(numChannels/4, 1, max) workers.
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
			dirtyInFlight, _ := c.processInFlightQueue(now)
			dirtyDeferred, _ := c.processDeferredQueue(now)
			p.responseCh <- dirtyInFlight || dirtyDeferred
		case <-p.closeCh:
			return
		}
	}
}

// uniqRands returns n distinct random ints in [0, max).
func uniqRands(n, limit int) []int {
	if n >= limit {
		return rand.Perm(limit)
	}
	return rand.Perm(limit)[:n]
}
