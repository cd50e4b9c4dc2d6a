// Package statsd formats statsd metric lines, packs them into UDP
// datagrams and sends those spread over a time span (D-STATSD-01/02).
package statsd

import (
	"io"
	"strconv"
	"strings"
	"time"
)

// HostKey is the "%s" replacement of a statsd prefix: "<addr>_<port>" with
// every '.' and ':' turned into '_' (e.g. "127_0_0_1_4151").
func HostKey(broadcastAddress string, httpPort int) string {
	key := broadcastAddress + ":" + strconv.Itoa(httpPort)
	return strings.NewReplacer(".", "_", ":", "_").Replace(key)
}

// ExpandPrefix replaces every "%s" in prefix with the host key and makes
// sure a non-empty result ends in '.'; an empty prefix stays empty
// (D-STATSD-02).
func ExpandPrefix(prefix, broadcastAddress string, httpPort int) string {
	if prefix == "" {
		return ""
	}
	p := strings.ReplaceAll(prefix, "%s", HostKey(broadcastAddress, httpPort))
	if !strings.HasSuffix(p, ".") {
		p += "."
	}
	return p
}

// Client accumulates metric lines "<prefix><key>:<value>|<type>\n" into
// datagrams of at most packetSize bytes. A line is never split: a line
// longer than packetSize travels alone in an oversized datagram.
type Client struct {
	prefix     string
	packetSize int
	packets    [][]byte
	cur        []byte
}

// NewClient returns a client writing keys under prefix (used as is; see
// ExpandPrefix).
func NewClient(prefix string, packetSize int) *Client {
	return &Client{prefix: prefix, packetSize: packetSize}
}

// Count adds a counter line (type "c").
func (c *Client) Count(key string, value int64) { c.line(key, value, 'c') }

// Gauge adds a gauge line (type "g").
func (c *Client) Gauge(key string, value int64) { c.line(key, value, 'g') }

func (c *Client) line(key string, value int64, typ byte) {
	l := make([]byte, 0, len(c.prefix)+len(key)+24)
	l = append(l, c.prefix...)
	l = append(l, key...)
	l = append(l, ':')
	l = strconv.AppendInt(l, value, 10)
	l = append(l, '|', typ, '\n')
	if len(c.cur) > 0 && len(c.cur)+len(l) > c.packetSize {
		c.packets = append(c.packets, c.cur)
		c.cur = nil
	}
	c.cur = append(c.cur, l...)
}

// Packets ends the current datagram and returns (and forgets) every
// datagram built so far.
func (c *Client) Packets() [][]byte {
	if len(c.cur) > 0 {
		c.packets = append(c.packets, c.cur)
		c.cur = nil
	}
	p := c.packets
	c.packets = nil
	return p
}

// Send writes each packet with one Write call, spreading them evenly over
// span: packet i goes out at i*span/len(packets) after the start. A
// non-positive span sends them back to back. Closing stop abandons the
// remaining packets. It returns the first write error.
func Send(w io.Writer, packets [][]byte, span time.Duration, stop <-chan struct{}) error {
	if len(packets) == 0 {
		return nil
	}
	start := time.Now()
	step := span / time.Duration(len(packets))
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for i, p := range packets {
		if step > 0 && i > 0 {
			wait := time.Until(start.Add(time.Duration(i) * step))
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-timer.C:
				case <-stop:
					return nil
				}
			}
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}
