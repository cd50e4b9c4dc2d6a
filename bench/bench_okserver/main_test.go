package main

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

// The server answers what bench_writer sends the way nsqd does: OK to
// IDENTIFY and to each PUB/MPUB, nothing to NOP, and it hangs up on a
// command it does not know.
func TestOKServerAnswersLikeNSQD(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go serve(conn)
		}
	}()

	conn, rd, err := benchutil.Dial(l.Addr().String(), "okserver-test", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))

	body := make([]byte, 200)
	cmds := append([]byte("NOP\n"), benchutil.PubCommand("t", body)...)
	cmds = append(cmds, benchutil.MPubCommand("t", body, 3)...)
	if _, err := conn.Write(cmds); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := rd.ExpectOK(); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}

	if _, err := conn.Write([]byte("SUB t c\n")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := rd.ReadFrame(); err != io.EOF {
		t.Fatalf("after an unknown command: %v, want the connection closed", err)
	}
}
