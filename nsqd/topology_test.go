package nsqd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ournsq/nsq/nsqd"
)

// Q-22 (fixed): unknown --enable-experiment names are refused at start.
func TestExperimentUnknownRejected(t *testing.T) {
	opts := nsqd.NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = ""
	opts.DataPath = t.TempDir()
	opts.Logger = &testLogger{t: t}
	opts.Experiments = []string{"bogus"}
	n, err := nsqd.New(opts)
	if err == nil {
		n.Exit()
		t.Fatal("nsqd.New accepted --enable-experiment=bogus")
	}
	if !strings.Contains(err.Error(), `unknown experiment "bogus"`) {
		t.Fatalf("error %q does not name the experiment", err)
	}
}

// D-TOPO-01/02: with the experiment, a waiting same-zone consumer gets a
// message before a same-region one, which gets it before the others; the
// channel counts deliveries by locality.
func TestTopologyAwareConsumption(t *testing.T) {
	n, addr := startNSQD(t, func(o *nsqd.Options) {
		o.Experiments = []string{nsqd.ExperimentTopologyAwareConsumption}
		o.TopologyZone = "z1"
		o.TopologyRegion = "r1"
	})
	zone := consumer(t, addr, "topo", "ch", `{"topology_zone":"z1","topology_region":"r1"}`, 1)
	region := consumer(t, addr, "topo", "ch", `{"topology_zone":"z2","topology_region":"r1"}`, 1)
	global := consumer(t, addr, "topo", "ch", `{"topology_zone":"z3","topology_region":"r3"}`, 1)
	time.Sleep(100 * time.Millisecond) // let every pump reach its select

	for i, c := range []*wireConn{zone, region, global} {
		body := []string{"m-zone", "m-region", "m-global"}[i]
		publish(t, addr, "topo", body)
		if m := c.readMsgWithin(5 * time.Second); m.body != body {
			t.Fatalf("consumer %d got %q, want %q", i, m.body, body)
		}
	}
	st := n.GetStats("topo", "ch", false)[0].Channels[0]
	if st.ZoneLocalMsgCount != 1 || st.RegionLocalMsgCount != 1 || st.GlobalMsgCount != 1 {
		t.Fatalf("zone/region/global counts %d/%d/%d, want 1/1/1",
			st.ZoneLocalMsgCount, st.RegionLocalMsgCount, st.GlobalMsgCount)
	}
}

// D-TOPO-02: without the experiment every memory-queue delivery is global
// and the zone/region keys stay absent.
func TestTopologyCountersWithoutExperiment(t *testing.T) {
	n, addr := startNSQD(t, func(o *nsqd.Options) { o.TopologyZone = "z1" })
	c := consumer(t, addr, "plain", "ch", `{"topology_zone":"z1"}`, 5)
	time.Sleep(50 * time.Millisecond)
	publish(t, addr, "plain", "a", "b")
	c.readMsgWithin(5 * time.Second)
	c.readMsgWithin(5 * time.Second)
	st := n.GetStats("plain", "ch", false)[0].Channels[0]
	if st.ZoneLocalMsgCount != 0 || st.RegionLocalMsgCount != 0 || st.GlobalMsgCount != 2 {
		t.Fatalf("zone/region/global counts %d/%d/%d, want 0/0/2",
			st.ZoneLocalMsgCount, st.RegionLocalMsgCount, st.GlobalMsgCount)
	}
}

// D-TCP-52, Q-04: with sample_rate S a message is delivered with
// probability (S+1)%; the rest are dropped for that channel (not queued,
// not in flight), as NSQ does.
func TestSampleRateDrops(t *testing.T) {
	n, addr := startNSQD(t, nil)
	c := consumer(t, addr, "sampled", "ch", `{"sample_rate":1}`, 2500)
	time.Sleep(50 * time.Millisecond)
	const total = 1000
	bodies := make([]string, total)
	for i := range bodies {
		bodies[i] = "x"
	}
	publish(t, addr, "sampled", bodies...)
	ch := func() nsqd.ChannelStats { return n.GetStats("sampled", "ch", true)[0].Channels[0] }
	eventually(t, 5*time.Second, "every message taken from the channel", func() bool {
		s := ch()
		return s.MessageCount == total && s.Depth == 0
	})
	s := ch()
	delivered := s.InFlightCount
	// expected ~20 of 1000 (2%); 0 or 100+ would mean sampling is broken
	if delivered == 0 || delivered >= 100 {
		t.Fatalf("%d of %d delivered with sample_rate 1", delivered, total)
	}
	if got := s.Clients[0].MessageCount; got != uint64(delivered) || s.Clients[0].SampleRate != 1 {
		t.Fatalf("client message_count %d sample_rate %d, want %d and 1", got, s.Clients[0].SampleRate, delivered)
	}
	for i := 0; i < delivered; i++ {
		c.readMsgWithin(5 * time.Second)
	}
}
