package nsqd

import (
	"encoding/binary"
	"testing"
	"time"
)

// Commands that meet a topic or channel on its way out (D-TCP-32, D-ERR-33,
// D-ERR-47, D-ERR-51, D-ERR-54). The window between a Close/Delete setting
// the exit flag and the topic leaving nsqd's map is too short to hit from
// outside, so these tests hold it open by setting the flag themselves (and
// clear it again, so that the test's own shutdown closes everything). Raw
// V2 round trips: rawRoundTrip and pubBody (core_internal_test.go).

func TestPublishToClosingTopicFails(t *testing.T) {
	n := startTestNSQD(t, nil)
	addr := n.RealTCPAddr().String()
	topic := n.GetTopic("closing")
	topic.exitFlag.Store(true)
	defer topic.exitFlag.Store(false)

	mpub := []byte("MPUB closing\n")
	mpub = binary.BigEndian.AppendUint32(mpub, 4+4+1)
	mpub = binary.BigEndian.AppendUint32(mpub, 1)
	mpub = append(binary.BigEndian.AppendUint32(mpub, 1), 'm')
	for _, c := range []struct {
		cmd  []byte
		want string
	}{
		{pubBody("PUB closing", "p"), "E_PUB_FAILED PUB failed exiting"},
		{pubBody("DPUB closing 100", "d"), "E_DPUB_FAILED DPUB failed exiting"},
		{mpub, "E_MPUB_FAILED MPUB failed exiting"},
	} {
		ft, data, closed := rawRoundTrip(t, "tcp", addr, c.cmd)
		if ft != frameTypeError || data != c.want || !closed {
			t.Errorf("got frame %d %q closed=%v, want error %q and close", ft, data, closed, c.want)
		}
	}
	if d, m := topic.Depth(), topic.MessageCount(); d != 0 || m != 0 {
		t.Fatalf("the closing topic kept %d messages (counted %d)", d, m)
	}
}

// SUB joining an ephemeral topic that is exiting waits 100 ms and tries
// once more: still exiting is E_SUB_FAILED, gone by then is a normal SUB.
func TestSubToExitingEphemeralTopic(t *testing.T) {
	n := startTestNSQD(t, nil)
	addr := n.RealTCPAddr().String()
	topic := n.GetTopic("eph#ephemeral")
	topic.exitFlag.Store(true)

	start := time.Now()
	ft, data, closed := rawRoundTrip(t, "tcp", addr, []byte("SUB eph#ephemeral ch\n"))
	if want := "E_SUB_FAILED SUB failed to deleted topic/channel"; ft != frameTypeError || data != want || !closed {
		t.Fatalf("got frame %d %q closed=%v, want error %q and close", ft, data, closed, want)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("refused after %v, before the 100 ms retry", d)
	}

	// the exit flag clears during the pause: the retry joins (the
	// connection stays open until rawRoundTrip closes it)
	time.AfterFunc(30*time.Millisecond, func() { topic.exitFlag.Store(false) })
	ft, data, closed = rawRoundTrip(t, "tcp", addr, []byte("SUB eph#ephemeral ch\n"))
	if ft != frameTypeResponse || data != "OK" || closed {
		t.Fatalf("SUB after the retry: frame %d %q closed=%v, want OK on an open connection", ft, data, closed)
	}
}

// A channel that is closing refuses new clients: E_SUB_FAILED with the
// reason.
func TestSubToClosingChannel(t *testing.T) {
	n := startTestNSQD(t, nil)
	ch := n.GetTopic("t").GetChannel("closing")
	ch.exitFlag.Store(true)
	defer ch.exitFlag.Store(false)
	ft, data, closed := rawRoundTrip(t, "tcp", n.RealTCPAddr().String(), []byte("SUB t closing\n"))
	if want := "E_SUB_FAILED SUB failed exiting"; ft != frameTypeError || data != want || !closed {
		t.Fatalf("got frame %d %q closed=%v, want error %q and close", ft, data, closed, want)
	}
}
