package nsqd_test

import (
	"testing"
	"time"
)

// A response held back because the client pipelined another command must
// still go out when that command answers nothing: CLS then FIN/NOP in one
// write must get CLOSE_WAIT (go-nsq's Consumer.Stop waits for it).
func TestPipelinedResponseFollowedBySilentCommand(t *testing.T) {
	_, addr := startNSQD(t, nil)
	c := consumer(t, addr, "pipe", "ch", "", 0)
	c.write(cat(line("CLS"), line("NOP"), line("NOP")))
	f, err := c.readFrameWithin(2 * time.Second)
	if err != nil || f.typ != 0 || string(f.data) != "CLOSE_WAIT" {
		t.Fatalf("want CLOSE_WAIT at once, got %v %v", f, err)
	}
	p := dialV2(t, addr)
	p.write(cat(pubCmd("pipe", []byte("a")), line("NOP")))
	p.expectResponse("OK")
}
