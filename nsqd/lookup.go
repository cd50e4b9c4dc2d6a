package nsqd

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
	"github.com/ournsq/nsq/internal/version"
)

// defaultLookupdPingInterval is how often nsqd PINGs each nsqlookupd
// (D-LKP-06); a PING also reconnects a dropped peer.
const defaultLookupdPingInterval = 15 * time.Second

// lookupNotifier queues topic/channel changes for the lookup loop. Changes
// are handed over in order and without blocking the caller (a slow lookupd
// must not delay publishing, D-LKP-12).
type lookupNotifier struct {
	mu      sync.Mutex
	pending []interface{} // *Topic or *Channel
	signal  chan struct{}
}

func (q *lookupNotifier) push(v interface{}) {
	q.mu.Lock()
	q.pending = append(q.pending, v)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *lookupNotifier) drain() []interface{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	p := q.pending
	q.pending = nil
	return p
}

// lookupLoop owns the nsqlookupd peers: it connects to each configured
// address at start, sends REGISTER/UNREGISTER for every topology change,
// PINGs every interval, and follows PUT /config/nsqlookupd_tcp_addresses.
func (n *NSQD) lookupLoop() {
	var peers []*lookupPeer
	connect := true
	ticker := time.NewTicker(n.lookupdPingInterval)
	defer ticker.Stop()

	for {
		if connect {
			for _, addr := range n.getOpts().NSQLookupdTCPAddresses {
				if slices.ContainsFunc(peers, func(p *lookupPeer) bool { return p.addr == addr }) {
					continue
				}
				n.logf(lg.INFO, "LOOKUP(%s): adding peer", addr)
				p := newLookupPeer(addr, n.getOpts().MaxBodySize, n.logf, n.lookupdConnected)
				p.Command(nil) // connect now
				peers = append(peers, p)
			}
			snapshot := slices.Clone(peers)
			n.lookupPeers.Store(&snapshot)
			connect = false
		}

		select {
		case <-ticker.C:
			for _, p := range peers {
				n.logf(lg.DEBUG, "LOOKUPD(%s): sending heartbeat", p)
				if _, err := p.Command(cmdPing); err != nil {
					n.logf(lg.ERROR, "LOOKUPD(%s): %s - %s", p, "PING", err)
				}
			}
		case <-n.lookupNotify.signal:
			for _, v := range n.lookupNotify.drain() {
				cmd, desc := lookupCommandFor(v)
				for _, p := range peers {
					n.logf(lg.INFO, "LOOKUPD(%s): %s", p, desc)
					if _, err := p.Command(cmd); err != nil {
						n.logf(lg.ERROR, "LOOKUPD(%s): %s - %s", p, desc, err)
					}
				}
			}
		case <-n.lookupdAddrsChanged:
			wanted := n.getOpts().NSQLookupdTCPAddresses
			kept := make([]*lookupPeer, 0, len(peers))
			for _, p := range peers {
				if slices.Contains(wanted, p.addr) {
					kept = append(kept, p)
					continue
				}
				n.logf(lg.INFO, "LOOKUP(%s): removing peer", p)
				p.Close()
			}
			peers = kept
			connect = true
		case <-n.exitChan:
			for _, p := range peers {
				p.Close()
			}
			n.logf(lg.INFO, "LOOKUP: closing")
			return
		}
	}
}

// lookupCommandFor turns a queued change into REGISTER or UNREGISTER,
// decided by the object's state when the loop gets to it (D-LKP-05).
func lookupCommandFor(v interface{}) ([]byte, string) {
	switch o := v.(type) {
	case *Channel:
		if o.Exiting() {
			return cmdUnregister(o.topicName, o.name), fmt.Sprintf("channel UNREGISTER %s %s", o.topicName, o.name)
		}
		return cmdRegister(o.topicName, o.name), fmt.Sprintf("channel REGISTER %s %s", o.topicName, o.name)
	case *Topic:
		if o.Exiting() {
			return cmdUnregister(o.name, ""), fmt.Sprintf("topic UNREGISTER %s", o.name)
		}
		return cmdRegister(o.name, ""), fmt.Sprintf("topic REGISTER %s", o.name)
	}
	return nil, ""
}

// lookupdConnected runs on every (re)connect: IDENTIFY, then REGISTER every
// topic and channel (D-LKP-02..04).
func (n *NSQD) lookupdConnected(p *lookupPeer) error {
	opts := n.getOpts()
	hostname, _ := os.Hostname()
	// a map marshals with sorted keys: the order lookupd sees from NSQ
	body, err := json.Marshal(map[string]interface{}{
		"version":           version.Binary,
		"tcp_port":          opts.BroadcastTCPPort,
		"http_port":         opts.BroadcastHTTPPort,
		"hostname":          hostname,
		"broadcast_address": opts.BroadcastAddress,
		"topology_region":   opts.TopologyRegion,
		"topology_zone":     opts.TopologyZone,
	})
	if err != nil {
		return err
	}
	resp, err := p.roundTrip(cmdIdentify(body))
	if err != nil {
		n.logf(lg.ERROR, "LOOKUPD(%s): IDENTIFY - %s", p, err)
		return err
	}
	if string(resp) == "E_INVALID" {
		n.logf(lg.INFO, "LOOKUPD(%s): lookupd returned %s", p, resp)
		return fmt.Errorf("lookupd returned %s", resp)
	}
	var info peerInfo
	if err := json.Unmarshal(resp, &info); err != nil {
		n.logf(lg.ERROR, "LOOKUPD(%s): parsing response - %s", p, resp)
		return fmt.Errorf("parsing response - %s", resp)
	}
	p.setInfo(info)
	n.logf(lg.INFO, "LOOKUPD(%s): peer info %+v", p, info)
	if info.BroadcastAddress == "" {
		n.logf(lg.ERROR, "LOOKUPD(%s): no broadcast address", p)
	}

	for _, cmd := range n.registrations() {
		n.logf(lg.INFO, "LOOKUPD(%s): %s", p, cmd[:len(cmd)-1])
		if _, err := p.roundTrip(cmd); err != nil {
			n.logf(lg.ERROR, "LOOKUPD(%s): %s - %s", p, cmd[:len(cmd)-1], err)
			return err
		}
	}
	return nil
}

// registrations lists REGISTER commands for the whole topology: a topic
// without channels registers alone, otherwise each channel (which lookupd
// also files under its topic).
func (n *NSQD) registrations() [][]byte {
	n.RLock()
	topics := make([]*Topic, 0, len(n.topicMap))
	for _, t := range n.topicMap {
		topics = append(topics, t)
	}
	n.RUnlock()
	var cmds [][]byte
	for _, t := range topics {
		chans := t.channels()
		if len(chans) == 0 {
			cmds = append(cmds, cmdRegister(t.name, ""))
			continue
		}
		for _, c := range chans {
			cmds = append(cmds, cmdRegister(t.name, c.name))
		}
	}
	return cmds
}

// lookupdHTTPAddrs are the HTTP APIs of the lookupds that have identified.
func (n *NSQD) lookupdHTTPAddrs() []string {
	ptr := n.lookupPeers.Load()
	if ptr == nil {
		return nil
	}
	var addrs []string
	for _, p := range *ptr {
		if a := p.httpAddr(); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// precreateChannels creates the channels lookupd knows for a new topic, so
// that they get its first messages (D-TOPIC-01). Failures are logged only.
func (n *NSQD) precreateChannels(t *Topic) {
	addrs := n.lookupdHTTPAddrs()
	if len(addrs) == 0 {
		if len(n.getOpts().NSQLookupdTCPAddresses) > 0 {
			n.logf(lg.ERROR, "no available nsqlookupd to query for channels to pre-create for topic %s", t.name)
		}
		return
	}
	seen := map[string]bool{}
	for _, addr := range addrs {
		names, err := n.queryLookupdChannels(addr, t.name)
		if err != nil {
			n.logf(lg.ERROR, "failed to query nsqlookupd %s for channels of topic %s - %s", addr, t.name, err)
			continue
		}
		for _, name := range names {
			if seen[name] || protocol.IsEphemeral(name) || !protocol.IsValidChannelName(name) {
				continue
			}
			seen[name] = true
			t.GetChannel(name)
		}
	}
}

func (n *NSQD) queryLookupdChannels(addr, topic string) ([]string, error) {
	u := "http://" + addr + "/channels?topic=" + url.QueryEscape(topic)
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.nsq; version=1.0")
	resp, err := n.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, n.getOpts().MaxBodySize))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("got response %s %q", resp.Status, body)
	}
	var out struct {
		Channels []string `json:"channels"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return out.Channels, nil
}

// newHTTPClient is nsqd's outbound client (lookupd queries, later auth),
// with --http-client-connect-timeout and --http-client-request-timeout.
func newHTTPClient(connectTimeout, requestTimeout time.Duration) *http.Client {
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: requestTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: transport, Timeout: requestTimeout}
}
