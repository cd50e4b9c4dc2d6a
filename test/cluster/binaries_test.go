package cluster

// The same discovery path with the real binaries, started the way `make run`
// starts them: nsqlookupd, then nsqd with --lookupd-tcp-address and
// --broadcast-address=127.0.0.1. Spec rows: D-LKP-01/02/04/05/10/11,
// L-HTTP-05, L-CLI-11, D-CLI-61 (SIGTERM → exit 0), A (go-nsq via lookupd).

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"github.com/ournsq/nsq/test/internal/daemons"
)

func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }

func TestBinariesDiscovery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bins := daemons.Build(t, false) // without -race, even when the test runs under it

	addrs := daemons.FreeAddrs(t, 4)
	lTCP, lHTTP, nTCP, nHTTP := addrs[0], addrs[1], addrs[2], addrs[3]
	l := &lookupd{tcpAddr: lTCP, httpAddr: lHTTP}
	n := &nsqdNode{tcpAddr: nTCP, httpAddr: nHTTP}
	fmt.Sscanf(daemons.Port(nTCP), "%d", &n.tcpPort)
	fmt.Sscanf(daemons.Port(nHTTP), "%d", &n.httpPort)

	lp := daemons.Start(t, daemons.Cmd{Name: "nsqlookupd", Bin: bins.NSQLookupd,
		Args: []string{"--tcp-address=" + lTCP, "--http-address=" + lHTTP, "--broadcast-address=127.0.0.1"}})
	lp.WaitPing(t, lHTTP, waitLimit)
	dataPath := filepath.Join(dir, "data")
	if err := os.Mkdir(dataPath, 0o755); err != nil {
		t.Fatal(err)
	}
	np := daemons.Start(t, daemons.Cmd{Name: "nsqd", Bin: bins.NSQD, Args: []string{"--data-path=" + dataPath,
		"--tcp-address=" + nTCP, "--http-address=" + nHTTP,
		"--lookupd-tcp-address=" + lTCP, "--broadcast-address=127.0.0.1"}})
	np.WaitPing(t, nHTTP, waitLimit)

	// registered at start-up (IDENTIFY), before any topic exists
	eventually(t, waitLimit, "nsqd in lookupd /nodes", func() (bool, string) {
		ns := l.nodes(t)
		return len(ns) == 1 && ns[0].TCPPort == n.tcpPort && ns[0].HTTPPort == n.httpPort &&
			ns[0].BroadcastAddress == "127.0.0.1" && ns[0].Version == "1.3.0", fmt.Sprintf("%+v", ns)
	})

	const topic = "bin"
	n.pub(t, topic, "hello-bin")
	waitLookupPorts(t, l, topic, n.tcpPort)
	_, r := l.lookup(t, topic)
	if p := r.Producers[0]; p.BroadcastAddress != "127.0.0.1" || p.HTTPPort != n.httpPort || p.Version != "1.3.0" {
		t.Errorf("/lookup producer %+v: want broadcast_address 127.0.0.1, http_port %d, version 1.3.0", p, n.httpPort)
	}

	got := make(chan string, 10)
	c := newConsumer(t, topic, "ch", nsq.HandlerFunc(func(m *nsq.Message) error {
		got <- string(m.Body)
		return nil
	}))
	if err := c.ConnectToNSQLookupd(lHTTP); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-got:
		if body != "hello-bin" {
			t.Errorf("received %q, want hello-bin", body)
		}
	case <-time.After(waitLimit):
		t.Fatal("go-nsq consumer (via nsqlookupd) received nothing")
	}
	stopConsumer(t, c)

	// nsqd stops cleanly and lookupd forgets it (D-LKP-11, L-TCP-10)
	np.Stop(t, syscall.SIGTERM, waitLimit)
	waitLookupPorts(t, l, topic)
	lp.Stop(t, syscall.SIGTERM, waitLimit)
}
