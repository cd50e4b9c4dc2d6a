package statsd

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExpandPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix, addr string
		port         int
		want         string
	}{
		{"nsq.%s", "127.0.0.1", 4151, "nsq.127_0_0_1_4151."},
		{"nsq.%s", "myhost.example", 24451, "nsq.myhost_example_24451."},
		{"nsq.%s.", "h", 1, "nsq.h_1."},
		{"%s.x.%s", "a.b", 2, "a_b_2.x.a_b_2."},
		{"plain", "h", 1, "plain."},
		{"plain.", "h", 1, "plain."},
		{"nsq.%s", "vm", 0, "nsq.vm_0."}, // unix socket: port 0 (D-UNIX-01)
		{"", "h", 1, ""},
	} {
		if got := ExpandPrefix(tc.prefix, tc.addr, tc.port); got != tc.want {
			t.Errorf("ExpandPrefix(%q, %q, %d) = %q, want %q", tc.prefix, tc.addr, tc.port, got, tc.want)
		}
	}
	if got := HostKey("127.0.0.1", 4151); got != "127_0_0_1_4151" {
		t.Errorf("HostKey = %q", got)
	}
}

func TestLines(t *testing.T) {
	c := NewClient("p.", 508)
	c.Count("topic.t.message_count", 5)
	c.Gauge("topic.t.depth", 0)
	c.Count("mem.gc_runs", 0)
	c.Gauge("x", -3)
	p := c.Packets()
	if len(p) != 1 {
		t.Fatalf("%d packets", len(p))
	}
	want := "p.topic.t.message_count:5|c\np.topic.t.depth:0|g\np.mem.gc_runs:0|c\np.x:-3|g\n"
	if string(p[0]) != want {
		t.Errorf("got %q, want %q", p[0], want)
	}
	if len(c.Packets()) != 0 {
		t.Error("Packets did not reset")
	}
	// no prefix
	c = NewClient("", 508)
	c.Gauge("a", 1)
	if p := c.Packets(); string(p[0]) != "a:1|g\n" {
		t.Errorf("no prefix: %q", p[0])
	}
}

// TestPacking: datagrams never exceed the size and never split a line;
// an oversized line travels alone (D-CLI-44).
func TestPacking(t *testing.T) {
	line := regexp.MustCompile(`^nsq\.h_1\.[a-z0-9_.#]+:\d+\|[cg]$`)
	for _, size := range []int{1, 30, 64, 100, 508, 1 << 16} {
		c := NewClient("nsq.h_1.", size)
		var want []string
		for i := 0; i < 200; i++ {
			key := "topic." + strings.Repeat("t", i%40) + ".depth"
			c.Gauge(key, int64(i))
			want = append(want, "nsq.h_1."+key+":"+strconv.Itoa(i)+"|g")
		}
		var got []string
		for _, p := range c.Packets() {
			if !bytes.HasSuffix(p, []byte("\n")) {
				t.Fatalf("size %d: packet does not end in a newline: %q", size, p)
			}
			lines := strings.Split(strings.TrimSuffix(string(p), "\n"), "\n")
			if len(p) > size && len(lines) != 1 {
				t.Fatalf("size %d: %d-byte packet holds %d lines", size, len(p), len(lines))
			}
			for _, l := range lines {
				if !line.MatchString(l) {
					t.Fatalf("size %d: broken line %q", size, l)
				}
			}
			got = append(got, lines...)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("size %d: lines lost or reordered", size)
		}
	}
	// full packets are used
	c := NewClient("", 12)
	for i := 0; i < 4; i++ {
		c.Gauge("ab", 1) // "ab:1|g\n" = 7 bytes
	}
	if p := c.Packets(); len(p) != 4 {
		t.Errorf("12-byte packets of 7-byte lines: %d packets", len(p))
	}
	c = NewClient("", 14)
	for i := 0; i < 4; i++ {
		c.Gauge("ab", 1)
	}
	if p := c.Packets(); len(p) != 2 || len(p[0]) != 14 {
		t.Errorf("14-byte packets of 7-byte lines: %q", p)
	}
}

type recWriter struct {
	at  []time.Time
	buf [][]byte
	err error
}

func (w *recWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.at = append(w.at, time.Now())
	w.buf = append(w.buf, append([]byte(nil), p...))
	return len(p), nil
}

func TestSendSpread(t *testing.T) {
	packets := [][]byte{[]byte("a\n"), []byte("b\n"), []byte("c\n"), []byte("d\n")}
	w := &recWriter{}
	start := time.Now()
	if err := Send(w, packets, 400*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if len(w.buf) != 4 {
		t.Fatalf("%d writes", len(w.buf))
	}
	for i, at := range w.at {
		if d := at.Sub(start); d < time.Duration(i)*100*time.Millisecond-5*time.Millisecond {
			t.Errorf("packet %d sent after %v, too early", i, d)
		}
	}
	if d := w.at[3].Sub(start); d > 390*time.Millisecond+200*time.Millisecond {
		t.Errorf("last packet after %v", d)
	}

	// no span: at once
	w = &recWriter{}
	start = time.Now()
	Send(w, packets, 0, nil)
	if len(w.buf) != 4 || time.Since(start) > 50*time.Millisecond {
		t.Errorf("span 0: %d writes in %v", len(w.buf), time.Since(start))
	}

	// stop abandons the rest
	w = &recWriter{}
	stop := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(stop) })
	start = time.Now()
	Send(w, packets, 10*time.Second, stop)
	if len(w.buf) != 1 || time.Since(start) > time.Second {
		t.Errorf("stopped: %d writes after %v", len(w.buf), time.Since(start))
	}

	// write errors are returned
	w = &recWriter{err: errors.New("boom")}
	if err := Send(w, packets, 0, nil); err == nil || err.Error() != "boom" {
		t.Errorf("error %v", err)
	}
	if err := Send(w, nil, time.Second, nil); err != nil {
		t.Errorf("no packets: %v", err)
	}
}
