package nsqlookupd

import (
	"os"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// Options holds every nsqlookupd setting. The `flag` tags drive go-options:
// the TOML key is the flag name with '-' turned into '_' (L-CLI-02). Fields
// without a tag are not flags: NSQ has no such flag, only tests change them.
type Options struct {
	LogLevel  lg.LogLevel `flag:"log-level"`
	LogPrefix string      `flag:"log-prefix"`
	// Logger receives every log line; nil means stderr with LogPrefix.
	Logger lg.Logger

	TCPAddress       string `flag:"tcp-address"`
	HTTPAddress      string `flag:"http-address"`
	BroadcastAddress string `flag:"broadcast-address"`

	InactiveProducerTimeout time.Duration `flag:"inactive-producer-timeout"`
	TombstoneLifetime       time.Duration `flag:"tombstone-lifetime"`

	// ClientTimeout bounds the wait for the next bytes from a TCP peer (its
	// magic, its next command line, an IDENTIFY body) and for a response
	// write. NSQ has no such limit, so a peer that connects and goes silent
	// held a goroutine forever. nsqd PINGs every 15 s, so 60 s is four
	// missed pings; a timed-out peer is dropped and its registrations go
	// with it (L-TCP-10), exactly as when it disconnects.
	ClientTimeout time.Duration

	// HTTPShutdownTimeout is how long Exit lets HTTP requests in progress
	// finish before their connections are closed.
	HTTPShutdownTimeout time.Duration
}

// NewOptions returns the defaults of NSQ v1.3.0's nsqlookupd (spec 6.1).
func NewOptions() *Options {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	return &Options{
		LogLevel:  lg.INFO,
		LogPrefix: "[nsqlookupd] ",

		TCPAddress:       "0.0.0.0:4160",
		HTTPAddress:      "0.0.0.0:4161",
		BroadcastAddress: hostname,

		InactiveProducerTimeout: 300 * time.Second,
		TombstoneLifetime:       45 * time.Second,

		ClientTimeout:       60 * time.Second,
		HTTPShutdownTimeout: 5 * time.Second,
	}
}
