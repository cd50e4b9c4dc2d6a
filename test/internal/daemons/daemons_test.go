package daemons

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestPortAndFreeAddrs(t *testing.T) {
	if got := Port("127.0.0.1:4150"); got != "4150" {
		t.Errorf("Port = %q, want 4150", got)
	}
	addrs := FreeAddrs(t, 3)
	if len(addrs) != 3 || addrs[0] == addrs[1] || addrs[1] == addrs[2] || addrs[0] == addrs[2] {
		t.Errorf("FreeAddrs(3) = %v, want 3 distinct addresses", addrs)
	}
}

// sh stands in for a daemon: it logs its listeners, then runs until SIGTERM.
func TestWaitListeningAndStop(t *testing.T) {
	p := Start(t, Cmd{Name: "fake", Bin: "/bin/sh", Args: []string{"-c", `
		trap 'echo bye; exit 0' TERM
		echo "[fake] INFO: HTTPS: listening on 127.0.0.1:3"
		sleep 0.1
		echo "[fake] INFO: TCP: listening on 127.0.0.1:1"
		echo "[fake] INFO: HTTP: listening on 127.0.0.1:2" >&2
		while :; do sleep 0.05; done`}})
	got := p.WaitListening(t, 10*time.Second, "TCP", "HTTP", "HTTPS")
	if want := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}; !slices.Equal(got, want) {
		t.Errorf("WaitListening = %v, want %v", got, want)
	}
	p.Stop(t, syscall.SIGTERM, 10*time.Second)
	if out := p.Output(); len(out) == 0 || out[len(out)-4:] != "bye\n" {
		t.Errorf("output %q does not end with bye", out)
	}
}

func TestKill(t *testing.T) {
	p := Start(t, Cmd{Name: "sleep", Bin: "sleep", Args: []string{"30"}, Quiet: true})
	p.Kill(t)
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	if p.Err() == nil {
		t.Error("Err() = nil after SIGKILL, want the signal")
	}
}
