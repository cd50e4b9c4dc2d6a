// bench_okserver is the ceiling of a Go broker for one PUB per round trip:
// a TCP server that speaks just enough of the V2 protocol for bench_writer
// (magic, then commands) and answers every command that carries a body
// (IDENTIFY, PUB, MPUB, DPUB) with OK, keeping nothing; NOP gets no
// answer, anything else closes the connection. Whatever
// `bench_writer --pub --conns=1` reaches against it is the loopback, the
// kernel's scheduling and the Go client; no nsqd can do better on the same
// machine (docs/performance.md, "PUB with one connection").
//
//	go build -o /tmp/okserver ./bench/bench_okserver && /tmp/okserver --tcp-address=127.0.0.1:24150 &
//	go run ./bench/bench_writer --pub --conns=1 --runfor=3s --nsqd-tcp-address=127.0.0.1:24150
//
// Its read loop is the one nsqd's IOLoop blocks in (a bufio.Reader on the
// net.Conn, parked in the netpoller when empty), so it keeps the runtime's
// costs and drops only nsqd's own work.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"io"
	"log"
	"net"
)

var tcpAddress = flag.String("tcp-address", "127.0.0.1:24150", "<addr>:<port> to listen on")

var okFrame = []byte{0, 0, 0, 6, 0, 0, 0, 0, 'O', 'K'}

func main() {
	flag.Parse()
	log.SetPrefix("bench_okserver: ")
	log.SetFlags(0)
	l, err := net.Listen("tcp", *tcpAddress)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	for {
		conn, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(conn)
	}
}

// serve answers one connection until it closes or sends garbage.
func serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 16<<10)
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if bytes.Equal(line, []byte("NOP\n")) {
			continue // answered with nothing, as nsqd does
		}
		if !hasBody(line) {
			return // not a command this server knows
		}
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return
		}
		if _, err := r.Discard(int(binary.BigEndian.Uint32(size[:]))); err != nil {
			return
		}
		if _, err := conn.Write(okFrame); err != nil {
			return
		}
	}
}

// bodyCommands are the commands followed by a sized body.
var bodyCommands = [][]byte{[]byte("IDENTIFY"), []byte("PUB "), []byte("MPUB "), []byte("DPUB ")}

// hasBody reports whether the command line is followed by a sized body.
func hasBody(line []byte) bool {
	for _, cmd := range bodyCommands {
		if bytes.HasPrefix(line, cmd) {
			return true
		}
	}
	return false
}
