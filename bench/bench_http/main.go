// Command bench_http publishes fixed-size messages to one nsqd over HTTP
// as fast as it can for --runfor and prints the rate (the "HTTP /pub,
// /mpub of 200, 4 keep-alive connections" reference row).
//
// Each of --conns connections is a persistent keep-alive HTTP/1.1
// connection driven by hand, not by net/http's client (whose CPU cost on a
// small machine would be measured instead of nsqd): a prebuilt request
// "POST /pub?topic=T HTTP/1.1" (one message as the body) or
// "POST /mpub?topic=T HTTP/1.1" (--batch-size messages separated by "\n",
// text mode) with a Content-Length is written, then the status line, the
// headers and the Content-Length body of the response are read with a
// bufio.Reader. Anything but "200" (or a response without Content-Length,
// or one that closes the connection) ends the tool with an error.
//
// Messages are counted, not requests: an /mpub request counts
// --batch-size. --count stops after that many messages in total (rounded
// up to whole requests); --runfor still bounds the run.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/bench/internal/benchutil"
)

var (
	runfor      = flag.Duration("runfor", 10*time.Second, "duration of time to run")
	httpAddress = flag.String("nsqd-http-address", "127.0.0.1:4151", "<addr>:<port> of nsqd's HTTP listener")
	topic       = flag.String("topic", "sub_bench", "topic to publish to")
	size        = flag.Int("size", 200, "size of messages")
	batchSize   = flag.Int("batch-size", 200, "messages per /mpub request")
	conns       = flag.Int("conns", 4, "number of keep-alive connections")
	mode        = flag.String("mode", "pub", "pub (one message per POST /pub) or mpub (--batch-size messages per POST /mpub)")
	count       = flag.Int64("count", 0, "stop after publishing this many messages in total (rounded up to whole requests); 0 = run for --runfor")
	deadline    = flag.String("deadline", "", "deadline to start the benchmark run")
)

// request renders the whole HTTP/1.1 request: headers and body.
func request(path string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", path, *httpAddress, len(body))
	b.Write(body)
	return b.Bytes()
}

var (
	headerContentLength    = []byte("content-length:")
	headerTransferEncoding = []byte("transfer-encoding:")
	headerConnection       = []byte("connection:")
)

// hasPrefixFold reports whether line starts with the lower-case prefix,
// ignoring case.
func hasPrefixFold(line, prefix []byte) bool {
	return len(line) >= len(prefix) && bytes.EqualFold(line[:len(prefix)], prefix)
}

// readResponse reads one response from rd and fails unless it is a
// 200 with a Content-Length body on a connection that stays open. body is
// a scratch buffer; the (possibly grown) buffer is returned.
func readResponse(rd *bufio.Reader, body []byte) ([]byte, error) {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		return body, fmt.Errorf("reading status line: %w", err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return body, fmt.Errorf("bad status line %q", line)
	}
	status := string(line[9:12])
	statusLine := string(bytes.TrimRight(line, "\r\n"))
	length := -1
	closing := false
	for {
		line, err = rd.ReadSlice('\n')
		if err != nil {
			return body, fmt.Errorf("reading headers: %w", err)
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			break // end of headers
		}
		switch {
		case hasPrefixFold(line, headerContentLength):
			v := bytes.TrimSpace(line[len(headerContentLength):])
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 0 {
				return body, fmt.Errorf("bad Content-Length %q", v)
			}
			length = n
		case hasPrefixFold(line, headerTransferEncoding):
			return body, fmt.Errorf("%s: unsupported %q", statusLine, bytes.TrimSpace(line))
		case hasPrefixFold(line, headerConnection):
			if bytes.Contains(bytes.ToLower(line), []byte("close")) {
				closing = true
			}
		}
	}
	if length < 0 {
		return body, fmt.Errorf("%s: response without Content-Length", statusLine)
	}
	if cap(body) < length {
		body = make([]byte, length)
	}
	body = body[:length]
	if _, err := io.ReadFull(rd, body); err != nil {
		return body, fmt.Errorf("reading body: %w", err)
	}
	if status != "200" {
		return body, fmt.Errorf("%s: %s", statusLine, body)
	}
	if closing {
		return body, fmt.Errorf("%s: nsqd closes the connection (Connection: close)", statusLine)
	}
	return body, nil
}

func main() {
	flag.Parse()
	log.SetPrefix("bench_http: ")
	log.SetFlags(0)
	if *size <= 0 || *batchSize <= 0 || *conns <= 0 {
		log.Fatal("--size, --batch-size and --conns must be > 0")
	}

	msg := bytes.Repeat([]byte{'a'}, *size)
	var req []byte
	perReq := int64(1)
	switch *mode {
	case "pub":
		req = request("/pub?topic="+url.QueryEscape(*topic), msg)
	case "mpub":
		// text mode: messages separated by "\n" (nsqd splits on it)
		body := make([]byte, 0, *batchSize*(*size+1))
		for i := 0; i < *batchSize; i++ {
			if i > 0 {
				body = append(body, '\n')
			}
			body = append(body, msg...)
		}
		req = request("/mpub?topic="+url.QueryEscape(*topic), body)
		perReq = int64(*batchSize)
	default:
		log.Fatalf("--mode must be pub or mpub, not %q", *mode)
	}

	var total, claimed atomic.Int64
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	stop := make(chan struct{})
	for i := 0; i < *conns; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			conn, err := net.DialTimeout("tcp", *httpAddress, 5*time.Second)
			if err != nil {
				log.Fatal(err)
			}
			defer conn.Close()
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			rd := bufio.NewReaderSize(conn, 4096)
			scratch := make([]byte, 64)
			ready.Done()
			<-start
			benchutil.RequestLoop(stop, &claimed, *count, perReq, &total, func() {
				if _, err := conn.Write(req); err != nil {
					log.Fatalf("writing request: %s", err)
				}
				if scratch, err = readResponse(rd, scratch); err != nil {
					log.Fatalf("POST /%s: %s", *mode, err)
				}
			})
		}()
	}
	elapsed, cpu0 := benchutil.RunWorkers(*deadline, *runfor, &ready, &done, start, stop)
	benchutil.Result(os.Stdout, elapsed, total.Load(), *size)
	benchutil.ClientCPU(os.Stderr, cpu0, total.Load())
	if *mode == "pub" {
		fmt.Fprintf(os.Stderr, "# %d keep-alive connections, POST /pub\n", *conns)
	} else {
		fmt.Fprintf(os.Stderr, "# %d keep-alive connections, POST /mpub of %d\n", *conns, *batchSize)
	}
}
