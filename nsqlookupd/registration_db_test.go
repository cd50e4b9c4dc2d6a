package nsqlookupd

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func testPeer(id, broadcast string, httpPort int, now time.Time) *PeerInfo {
	p := NewPeerInfo(id)
	p.BroadcastAddress = broadcast
	p.TCPPort = 4150
	p.HTTPPort = httpPort
	p.Version = "1.3.0"
	p.Touch(now)
	return p
}

func ids(ps []Producer) string {
	s := ""
	for _, p := range ps {
		s += p.Peer.ID() + " "
	}
	return s
}

// L-DB-01, L-DB-03
func TestDBKeysAndProducers(t *testing.T) {
	db := NewRegistrationDB()
	now := time.Now()
	a := testPeer("127.0.0.1:1", "same", 4151, now)
	b := testPeer("127.0.0.1:2", "same", 4151, now)

	if !db.AddRegistration(TopicRegistration("t")) || db.AddRegistration(TopicRegistration("t")) {
		t.Fatal("AddRegistration should create once")
	}
	if !db.AddProducer(TopicRegistration("t"), a) || db.AddProducer(TopicRegistration("t"), a) {
		t.Fatal("AddProducer should add once")
	}
	// Same broadcast address, different peer id: distinct producers.
	db.AddProducer(TopicRegistration("t"), b)
	db.AddProducer(ChannelRegistration("t", "c"), a)
	if got := ids(db.Producers(TopicRegistration("t"))); got != "127.0.0.1:1 127.0.0.1:2 " {
		t.Fatalf("producers %q", got)
	}
	if ps := db.Producers(TopicRegistration("absent")); ps == nil || len(ps) != 0 {
		t.Fatal("absent key should give an empty, non-nil slice")
	}

	removed, left := db.RemoveProducer(TopicRegistration("t"), a, false)
	if !removed || left != 1 {
		t.Fatalf("RemoveProducer = %v, %d", removed, left)
	}
	removed, left = db.RemoveProducer(TopicRegistration("t"), a, false)
	if removed || left != 1 {
		t.Fatalf("second RemoveProducer = %v, %d", removed, left)
	}
	db.RemoveProducer(TopicRegistration("t"), b, false)
	if !db.HasRegistration(TopicRegistration("t")) {
		t.Fatal("empty key must linger (L-DB-03)")
	}
	db.AddProducer(TopicRegistration("e#ephemeral"), a)
	if _, left := db.RemoveProducer(TopicRegistration("e#ephemeral"), a, true); left != 0 ||
		db.HasRegistration(TopicRegistration("e#ephemeral")) {
		t.Fatal("dropIfEmpty should delete the key")
	}

	// RemovePeer: gone from every key, keys stay, the index is clean.
	db.AddProducer(TopicRegistration("t"), a)
	regs := db.RemovePeer(a)
	if fmt.Sprint(regs) != "[channel:t:c topic:t:]" {
		t.Fatalf("RemovePeer = %v", regs)
	}
	if !db.HasRegistration(ChannelRegistration("t", "c")) || len(db.Producers(ChannelRegistration("t", "c"))) != 0 {
		t.Fatal("channel key should stay, empty")
	}
	if len(db.byPeer) != 0 {
		t.Fatalf("index not clean: %v", db.byPeer)
	}

	// Dump omits empty keys; renders keys as category:key:subkey.
	db.AddProducer(ClientRegistration, b)
	dump := db.Dump()
	if len(dump) != 1 || len(dump[ClientRegistration]) != 1 || ClientRegistration.String() != "client::" ||
		ChannelRegistration("t", "c").String() != "channel:t:c" {
		t.Fatalf("Dump = %v", dump)
	}

	db.AddRegistration(ChannelRegistration("t", "c2"))
	db.AddRegistration(ChannelRegistration("other", "c"))
	if got := db.ChannelNames("t"); fmt.Sprint(got) != "[c c2]" {
		t.Fatalf("ChannelNames = %v", got)
	}
	if got := db.ChannelNames("*"); len(got) != 0 {
		t.Fatalf("names are literal, not wildcards: %v", got)
	}
	chans, existed := db.RemoveTopic("t")
	if fmt.Sprint(chans) != "[c c2]" || !existed || db.HasRegistration(TopicRegistration("t")) {
		t.Fatalf("RemoveTopic = %v %v", chans, existed)
	}
	if !db.HasRegistration(ChannelRegistration("other", "c")) {
		t.Fatal("RemoveTopic touched another topic")
	}
	if fmt.Sprint(db.TopicNames()) != "[]" {
		t.Fatalf("TopicNames = %v", db.TopicNames())
	}
}

// A stale entry (same ip:port, older connection not yet cleaned up) is
// replaced, and the old connection's cleanup does not remove the new one.
func TestDBStalePeerReplaced(t *testing.T) {
	db := NewRegistrationDB()
	old := testPeer("127.0.0.1:9", "x", 1, time.Now())
	cur := testPeer("127.0.0.1:9", "x", 1, time.Now())
	db.AddProducer(TopicRegistration("t"), old)
	if !db.AddProducer(TopicRegistration("t"), cur) {
		t.Fatal("stale entry not replaced")
	}
	if removed, _ := db.RemoveProducer(TopicRegistration("t"), old, false); removed {
		t.Fatal("old peer removed the new entry")
	}
	db.RemovePeer(old)
	if ps := db.Producers(TopicRegistration("t")); len(ps) != 1 || ps[0].Peer != cur {
		t.Fatalf("producers %+v", ps)
	}
}

// L-DB-04
func TestDBInactivityFilter(t *testing.T) {
	now := time.Now()
	fresh := testPeer("a:1", "a", 1, now.Add(-299*time.Second))
	stale := testPeer("b:1", "b", 1, now.Add(-301*time.Second))
	ps := []Producer{{Peer: fresh}, {Peer: stale}}
	if got := ids(FilterByActive(ps, now, 300*time.Second, 45*time.Second)); got != "a:1 " {
		t.Fatalf("active = %q", got)
	}
	// A PING brings it back.
	stale.Touch(now)
	if got := ids(FilterByActive(ps, now, 300*time.Second, 45*time.Second)); got != "a:1 b:1 " {
		t.Fatalf("active after touch = %q", got)
	}
	if out := FilterByActive(nil, now, time.Second, 0); out == nil {
		t.Fatal("nil result")
	}
}

// L-DB-05
func TestDBTombstones(t *testing.T) {
	db := NewRegistrationDB()
	now := time.Now()
	a := testPeer("127.0.0.1:1", "host-a", 4151, now)
	b := testPeer("127.0.0.1:2", "host-b", 4151, now)
	for _, p := range []*PeerInfo{a, b} {
		db.AddProducer(ClientRegistration, p)
		db.AddProducer(TopicRegistration("t"), p)
		db.AddProducer(TopicRegistration("u"), p)
		db.AddProducer(ChannelRegistration("t", "c"), p)
	}
	if n := db.Tombstone("t", "host-a:4150", now); n != 0 {
		t.Fatal("matched on the TCP port; the node is broadcast_address:http_port")
	}
	if n := db.Tombstone("t", "host-a:4151", now); n != 1 {
		t.Fatalf("tombstoned %d", n)
	}
	lifetime := 45 * time.Second
	active := func(k Registration, at time.Time) string {
		return ids(FilterByActive(db.Producers(k), at, time.Hour, lifetime))
	}
	if got := active(TopicRegistration("t"), now); got != "127.0.0.1:2 " {
		t.Fatalf("t producers = %q", got)
	}
	// Other topics and channel registrations are unaffected.
	if got := active(TopicRegistration("u"), now); got != "127.0.0.1:1 127.0.0.1:2 " {
		t.Fatalf("u producers = %q", got)
	}
	if got := active(ChannelRegistration("t", "c"), now); got != "127.0.0.1:1 127.0.0.1:2 " {
		t.Fatalf("channel producers = %q", got)
	}
	// Re-REGISTER does not clear it.
	db.AddProducer(TopicRegistration("t"), a)
	if got := active(TopicRegistration("t"), now.Add(lifetime-time.Millisecond)); got != "127.0.0.1:2 " {
		t.Fatalf("before expiry = %q", got)
	}
	// It expires by time only; the raw flag stays.
	if got := active(TopicRegistration("t"), now.Add(lifetime)); got != "127.0.0.1:1 127.0.0.1:2 " {
		t.Fatalf("after expiry = %q", got)
	}
	if ps := db.Producers(TopicRegistration("t")); !ps[0].Tombstoned || !ps[0].TombstonedAt.Equal(now) {
		t.Fatalf("raw flag lost: %+v", ps[0])
	}

	// /nodes view: equal-length arrays, flag per topic.
	topics, tombs := db.PeerTopics(a, now, lifetime)
	if fmt.Sprint(topics, tombs) != "[t u] [true false]" {
		t.Fatalf("PeerTopics = %v %v", topics, tombs)
	}
	topics, tombs = db.PeerTopics(a, now.Add(lifetime), lifetime)
	if fmt.Sprint(topics, tombs) != "[t u] [false false]" {
		t.Fatalf("PeerTopics after expiry = %v %v", topics, tombs)
	}
	nobody := testPeer("x:1", "x", 1, now)
	topics, tombs = db.PeerTopics(nobody, now, lifetime)
	if topics == nil || tombs == nil || len(topics) != 0 || len(tombs) != 0 {
		t.Fatal("PeerTopics of an unknown peer must be empty, non-nil")
	}
}

// Readers and writers in parallel; run with -race.
func TestDBConcurrent(t *testing.T) {
	db := NewRegistrationDB()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p := testPeer(fmt.Sprintf("127.0.0.1:%d", w), "h", 1, time.Now())
			for i := 0; i < 200; i++ {
				topic := fmt.Sprintf("t%d", i%5)
				db.AddProducer(ClientRegistration, p)
				db.AddProducer(TopicRegistration(topic), p)
				db.AddProducer(ChannelRegistration(topic, "c#ephemeral"), p)
				db.Tombstone(topic, "h:1", time.Now())
				db.PeerTopics(p, time.Now(), time.Second)
				FilterByActive(db.Producers(TopicRegistration(topic)), time.Now(), time.Second, time.Second)
				db.Dump()
				db.TopicNames()
				db.RemoveProducer(ChannelRegistration(topic, "c#ephemeral"), p, true)
				if i%50 == 0 {
					db.RemoveTopic(topic)
					db.RemovePeer(p)
				}
				p.Touch(time.Now())
			}
			db.RemovePeer(p)
		}(w)
	}
	wg.Wait()
	if len(db.byPeer) != 0 {
		t.Fatalf("index not empty after every peer left: %d", len(db.byPeer))
	}
	for k, entries := range db.regs {
		if len(entries) != 0 {
			t.Fatalf("%s still has producers", k)
		}
	}
}
