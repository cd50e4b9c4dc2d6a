package nsqlookupd

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Registration categories (L-DB-01).
const (
	CategoryClient  = "client"
	CategoryTopic   = "topic"
	CategoryChannel = "channel"
)

// Registration is one key of the DB: ("client","",""), ("topic",T,"") or
// ("channel",T,C).
type Registration struct {
	Category string
	Key      string
	SubKey   string
}

// String renders the key as /debug shows it: category:key:subkey.
func (r Registration) String() string { return r.Category + ":" + r.Key + ":" + r.SubKey }

// ClientRegistration is the key every identified peer is registered under.
var ClientRegistration = Registration{CategoryClient, "", ""}

// TopicRegistration is the key of topic t.
func TopicRegistration(t string) Registration { return Registration{CategoryTopic, t, ""} }

// ChannelRegistration is the key of channel c of topic t.
func ChannelRegistration(t, c string) Registration { return Registration{CategoryChannel, t, c} }

// PeerInfo describes one identified nsqd connection. Every field except
// lastUpdate is written once by the connection's goroutine during IDENTIFY,
// before the peer is published to the DB, and is read-only afterwards.
// lastUpdate is refreshed by PING on that goroutine and read by HTTP handlers,
// hence atomic. The JSON tags are in /lookup's key order (L-HTTP-05) and are
// also the IDENTIFY body fields (L-TCP-05).
type PeerInfo struct {
	lastUpdate atomic.Int64 // UnixNano of the last IDENTIFY or PING
	id         string       // remote ip:port of the connection

	RemoteAddress    string `json:"remote_address"`
	Hostname         string `json:"hostname"`
	BroadcastAddress string `json:"broadcast_address"`
	TCPPort          int    `json:"tcp_port"`
	HTTPPort         int    `json:"http_port"`
	Version          string `json:"version"`
	TopologyZone     string `json:"topology_zone"`
	TopologyRegion   string `json:"topology_region"`
}

// NewPeerInfo returns a peer identified by id (its remote ip:port).
func NewPeerInfo(id string) *PeerInfo { return &PeerInfo{id: id, RemoteAddress: id} }

// ID is the peer id: the connection's remote ip:port.
func (p *PeerInfo) ID() string { return p.id }

// LastUpdate is the time of the last IDENTIFY or PING.
func (p *PeerInfo) LastUpdate() time.Time { return time.Unix(0, p.lastUpdate.Load()) }

// Touch records activity at t.
func (p *PeerInfo) Touch(t time.Time) { p.lastUpdate.Store(t.UnixNano()) }

// entry is a peer's membership in one registration. Its tombstone fields are
// guarded by the DB lock.
type entry struct {
	peer         *PeerInfo
	tombstoned   bool
	tombstonedAt time.Time
}

// Producer is a snapshot of one entry, safe to use after the DB lock is
// released.
type Producer struct {
	Peer         *PeerInfo
	Tombstoned   bool      // the raw flag: stays true after the lifetime ends
	TombstonedAt time.Time // zero when never tombstoned
}

// IsTombstoned reports whether the tombstone is still in force at now.
func (p Producer) IsTombstoned(now time.Time, lifetime time.Duration) bool {
	return p.Tombstoned && now.Sub(p.TombstonedAt) < lifetime
}

// FilterByActive keeps producers whose last IDENTIFY/PING is within
// inactivityTimeout of now and that are not tombstoned (L-DB-04, L-DB-05); a
// zero tombstoneLifetime ignores tombstones (/nodes). It never returns nil.
func FilterByActive(ps []Producer, now time.Time, inactivityTimeout, tombstoneLifetime time.Duration) []Producer {
	out := make([]Producer, 0, len(ps))
	for _, p := range ps {
		if now.Sub(p.Peer.LastUpdate()) > inactivityTimeout || p.IsTombstoned(now, tombstoneLifetime) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// RegistrationDB is the in-memory registration store (L-DB-01..05). It is
// safe for concurrent use: connection goroutines write, HTTP handlers read
// and write, all under one RWMutex held only for map work (no I/O, no
// logging). Keys may exist with no entries (L-DB-03).
type RegistrationDB struct {
	mu   sync.RWMutex
	regs map[Registration]map[string]*entry // key -> peer id -> entry
	// byPeer indexes the keys each peer appears in, so a disconnect and
	// /nodes cost the peer's own registrations, not the whole DB.
	byPeer map[*PeerInfo]map[Registration]struct{}
}

// NewRegistrationDB returns an empty DB.
func NewRegistrationDB() *RegistrationDB {
	return &RegistrationDB{
		regs:   make(map[Registration]map[string]*entry),
		byPeer: make(map[*PeerInfo]map[Registration]struct{}),
	}
}

// AddRegistration creates key k (with no producers) unless it exists; it
// reports whether it was created.
func (db *RegistrationDB) AddRegistration(k Registration) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	if _, ok := db.regs[k]; ok {
		return false
	}
	db.regs[k] = make(map[string]*entry)
	return true
}

// AddProducer adds peer to k, creating k if needed; it reports whether the
// peer was added (false when already present: REGISTER is idempotent and
// keeps a tombstone, L-DB-05). An entry left under the same id by an older
// connection that has not been cleaned up yet is replaced.
func (db *RegistrationDB) AddProducer(k Registration, peer *PeerInfo) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	entries, ok := db.regs[k]
	if !ok {
		entries = make(map[string]*entry)
		db.regs[k] = entries
	}
	if old, ok := entries[peer.id]; ok {
		if old.peer == peer {
			return false
		}
		db.unindex(old.peer, k)
	}
	entries[peer.id] = &entry{peer: peer}
	keys, ok := db.byPeer[peer]
	if !ok {
		keys = make(map[Registration]struct{})
		db.byPeer[peer] = keys
	}
	keys[k] = struct{}{}
	return true
}

// RemoveProducer removes peer from k. It reports whether the peer was there
// and how many producers are left. With dropIfEmpty, k itself is deleted
// when no producer is left (ephemeral UNREGISTER, L-TCP-09), in the same
// critical section so a concurrent REGISTER is never lost.
func (db *RegistrationDB) RemoveProducer(k Registration, peer *PeerInfo, dropIfEmpty bool) (removed bool, left int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	entries, ok := db.regs[k]
	if !ok {
		return false, 0
	}
	if e, ok := entries[peer.id]; ok && e.peer == peer {
		delete(entries, peer.id)
		db.unindex(peer, k)
		removed = true
	}
	if dropIfEmpty && len(entries) == 0 {
		delete(db.regs, k)
	}
	return removed, len(entries)
}

// RemoveRegistration deletes k and all its producers; it reports whether k
// existed.
func (db *RegistrationDB) RemoveRegistration(k Registration) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.removeLocked(k)
}

func (db *RegistrationDB) removeLocked(k Registration) bool {
	entries, ok := db.regs[k]
	if !ok {
		return false
	}
	for _, e := range entries {
		db.unindex(e.peer, k)
	}
	delete(db.regs, k)
	return true
}

// RemoveTopic deletes every channel key of topic t and then its topic key
// (L-HTTP-09). It returns the deleted channel names (sorted) and whether the
// topic key existed. t is matched literally.
func (db *RegistrationDB) RemoveTopic(t string) (channels []string, topicExisted bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	channels = []string{}
	for k := range db.regs {
		if k.Category == CategoryChannel && k.Key == t {
			channels = append(channels, k.SubKey)
		}
	}
	sort.Strings(channels)
	for _, c := range channels {
		db.removeLocked(ChannelRegistration(t, c))
	}
	return channels, db.removeLocked(TopicRegistration(t))
}

// RemovePeer removes peer from every key it is in (disconnect, L-TCP-10);
// keys stay even when they become empty. It returns the keys it was removed
// from, sorted.
func (db *RegistrationDB) RemovePeer(peer *PeerInfo) []Registration {
	db.mu.Lock()
	defer db.mu.Unlock()
	keys := db.byPeer[peer]
	out := make([]Registration, 0, len(keys))
	for k := range keys {
		if entries, ok := db.regs[k]; ok {
			if e, ok := entries[peer.id]; ok && e.peer == peer {
				delete(entries, peer.id)
			}
		}
		out = append(out, k)
	}
	delete(db.byPeer, peer)
	sortRegistrations(out)
	return out
}

// unindex drops k from peer's index entry. Caller holds mu.
func (db *RegistrationDB) unindex(peer *PeerInfo, k Registration) {
	keys := db.byPeer[peer]
	delete(keys, k)
	if len(keys) == 0 {
		delete(db.byPeer, peer)
	}
}

// HasRegistration reports whether key k exists (with or without producers).
func (db *RegistrationDB) HasRegistration(k Registration) bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	_, ok := db.regs[k]
	return ok
}

// TopicNames lists every topic key, empty ones included (L-HTTP-03), sorted.
func (db *RegistrationDB) TopicNames() []string {
	db.mu.RLock()
	names := []string{}
	for k := range db.regs {
		if k.Category == CategoryTopic {
			names = append(names, k.Key)
		}
	}
	db.mu.RUnlock()
	sort.Strings(names)
	return names
}

// ChannelNames lists every channel key of topic t (matched literally), empty
// ones included (L-HTTP-04), sorted.
func (db *RegistrationDB) ChannelNames(t string) []string {
	db.mu.RLock()
	names := []string{}
	for k := range db.regs {
		if k.Category == CategoryChannel && k.Key == t {
			names = append(names, k.SubKey)
		}
	}
	db.mu.RUnlock()
	sort.Strings(names)
	return names
}

// Producers snapshots the producers of k, sorted by peer id; never nil.
func (db *RegistrationDB) Producers(k Registration) []Producer {
	db.mu.RLock()
	out := snapshot(db.regs[k])
	db.mu.RUnlock()
	sortProducers(out)
	return out
}

func snapshot(entries map[string]*entry) []Producer {
	out := make([]Producer, 0, len(entries))
	for _, e := range entries {
		out = append(out, Producer{Peer: e.peer, Tombstoned: e.tombstoned, TombstonedAt: e.tombstonedAt})
	}
	return out
}

// Tombstone marks, in topic t's registration, every producer whose
// broadcast_address:http_port equals node (L-HTTP-12). It returns how many
// matched. Channel registrations are not touched (L-DB-05).
func (db *RegistrationDB) Tombstone(t, node string, now time.Time) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	n := 0
	for _, e := range db.regs[TopicRegistration(t)] {
		if e.peer.BroadcastAddress+":"+strconv.Itoa(e.peer.HTTPPort) == node {
			e.tombstoned = true
			e.tombstonedAt = now
			n++
		}
	}
	return n
}

// PeerTopics returns the topics peer is registered in, sorted, and for each
// whether its tombstone is in force at now (L-HTTP-06). Both slices always
// have the same length and are never nil: nsqadmin indexes one by the other.
func (db *RegistrationDB) PeerTopics(peer *PeerInfo, now time.Time, lifetime time.Duration) (topics []string, tombstones []bool) {
	db.mu.RLock()
	type mark struct {
		topic string
		tomb  bool
	}
	marks := make([]mark, 0, len(db.byPeer[peer]))
	for k := range db.byPeer[peer] {
		if k.Category != CategoryTopic {
			continue
		}
		e := db.regs[k][peer.id]
		tomb := e != nil && e.peer == peer &&
			Producer{Peer: peer, Tombstoned: e.tombstoned, TombstonedAt: e.tombstonedAt}.IsTombstoned(now, lifetime)
		marks = append(marks, mark{k.Key, tomb})
	}
	db.mu.RUnlock()
	sort.Slice(marks, func(i, j int) bool { return marks[i].topic < marks[j].topic })
	topics = make([]string, len(marks))
	tombstones = make([]bool, len(marks))
	for i, m := range marks {
		topics[i], tombstones[i] = m.topic, m.tomb
	}
	return topics, tombstones
}

// Dump snapshots every key that has producers (/debug, L-HTTP-07: empty keys
// are not shown), producers sorted by peer id.
func (db *RegistrationDB) Dump() map[Registration][]Producer {
	db.mu.RLock()
	out := make(map[Registration][]Producer, len(db.regs))
	for k, entries := range db.regs {
		if len(entries) > 0 {
			out[k] = snapshot(entries)
		}
	}
	db.mu.RUnlock()
	for _, ps := range out {
		sortProducers(ps)
	}
	return out
}

func sortProducers(ps []Producer) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Peer.id < ps[j].Peer.id })
}

func sortRegistrations(rs []Registration) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.SubKey < b.SubKey
	})
}
