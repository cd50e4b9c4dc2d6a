package nsqd

import (
	"crypto/md5"
	"crypto/tls"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/ournsq/nsq/internal/lg"
)

// Options holds every nsqd setting. The struct tags drive go-options: `flag`
// is the command-line name, `cfg` the TOML key where it is not the flag name
// with '-' turned into '_' (D-CFG-03). A `later` tag names the flag a field
// will get once its feature is built (HTTP, lookupd, TLS, statsd, ...): nsqd
// never lists a flag that does nothing yet.
type Options struct {
	// basic options
	ID        int64       `flag:"node-id" cfg:"id"`
	LogLevel  lg.LogLevel `flag:"log-level"`
	LogPrefix string      `flag:"log-prefix"`
	Logger    lg.Logger   `json:"-"`

	TCPAddress               string        `flag:"tcp-address"`
	HTTPAddress              string        `flag:"http-address"`
	HTTPSAddress             string        `flag:"https-address"`
	BroadcastAddress         string        `flag:"broadcast-address"`
	BroadcastTCPPort         int           `flag:"broadcast-tcp-port"`
	BroadcastHTTPPort        int           `flag:"broadcast-http-port"`
	NSQLookupdTCPAddresses   []string      `flag:"lookupd-tcp-address" cfg:"nsqlookupd_tcp_addresses"`
	AuthHTTPAddresses        []string      `flag:"auth-http-address" cfg:"auth_http_addresses"`
	AuthHTTPRequestMethod    string        `flag:"auth-http-request-method" cfg:"auth_http_request_method"`
	HTTPClientConnectTimeout time.Duration `flag:"http-client-connect-timeout" cfg:"http_client_connect_timeout"`
	HTTPClientRequestTimeout time.Duration `flag:"http-client-request-timeout" cfg:"http_client_request_timeout"`
	TopologyRegion           string        `flag:"topology-region"`
	TopologyZone             string        `flag:"topology-zone"`

	// diskqueue options
	DataPath        string        `flag:"data-path"`
	MemQueueSize    int64         `flag:"mem-queue-size"`
	MaxBytesPerFile int64         `flag:"max-bytes-per-file"`
	SyncEvery       int64         `flag:"sync-every"`
	SyncTimeout     time.Duration `flag:"sync-timeout"`

	// queue scanning (D-SCAN-01); the interval, refresh and dirty percent
	// are not flags in NSQ (D-CLI-58): apps/nsqd adds them as extension
	// flags, and /config does not expose them.
	QueueScanInterval        time.Duration
	QueueScanRefreshInterval time.Duration
	QueueScanSelectionCount  int `flag:"queue-scan-selection-count"`
	QueueScanWorkerPoolMax   int `flag:"queue-scan-worker-pool-max"`

	// msg and command options
	MsgTimeout    time.Duration `flag:"msg-timeout"`
	MaxMsgTimeout time.Duration `flag:"max-msg-timeout"`
	MaxMsgSize    int64         `flag:"max-msg-size"`
	MaxBodySize   int64         `flag:"max-body-size"`
	MaxReqTimeout time.Duration `flag:"max-req-timeout"`
	ClientTimeout time.Duration
	// LookupdPingInterval is how often each nsqlookupd is PINGed
	// (D-LKP-06); not a flag in NSQ, settable from code/tests.
	LookupdPingInterval time.Duration
	// ProtocolMagicTimeout bounds the wait for a new connection's protocol
	// magic (our addition; NSQ waits forever). Not a flag.
	ProtocolMagicTimeout time.Duration

	// client overridable configuration options
	MaxHeartbeatInterval   time.Duration `flag:"max-heartbeat-interval"`
	MaxRdyCount            int64         `flag:"max-rdy-count"`
	MaxOutputBufferSize    int64         `flag:"max-output-buffer-size"`
	MaxOutputBufferTimeout time.Duration `flag:"max-output-buffer-timeout"`
	MinOutputBufferTimeout time.Duration `flag:"min-output-buffer-timeout"`
	OutputBufferTimeout    time.Duration `flag:"output-buffer-timeout"`
	MaxChannelConsumers    int           `flag:"max-channel-consumers"`
	// MaxConnections caps concurrent TCP clients (our extension; 0 = no cap).
	MaxConnections int `flag:"max-connections"`

	// statsd integration
	StatsdAddress          string        `flag:"statsd-address"`
	StatsdPrefix           string        `flag:"statsd-prefix"`
	StatsdInterval         time.Duration `flag:"statsd-interval"`
	StatsdMemStats         bool          `flag:"statsd-mem-stats"`
	StatsdUDPPacketSize    int           `flag:"statsd-udp-packet-size"`
	StatsdExcludeEphemeral bool          `flag:"statsd-exclude-ephemeral"`

	// e2e message latency
	E2EProcessingLatencyWindowTime  time.Duration `flag:"e2e-processing-latency-window-time"`
	E2EProcessingLatencyPercentiles []float64     `flag:"e2e-processing-latency-percentile" cfg:"e2e_processing_latency_percentiles"`

	// TLS config
	TLSCert             string `flag:"tls-cert"`
	TLSKey              string `flag:"tls-key"`
	TLSClientAuthPolicy string `flag:"tls-client-auth-policy"`
	TLSRootCAFile       string `flag:"tls-root-ca-file"`
	TLSRequired         int    `flag:"tls-required"`
	TLSMinVersion       uint16 `flag:"tls-min-version"`

	// compression
	DeflateEnabled  bool `flag:"deflate"`
	MaxDeflateLevel int  `flag:"max-deflate-level"`
	SnappyEnabled   bool `flag:"snappy"`

	Experiments []string `flag:"enable-experiment" cfg:"enable_experiment"`

	// noHTTPFastPath serves every HTTP request through net/http (tests
	// compare the fast path's answers with net/http's).
	noHTTPFastPath bool
	// noDirectDelivery keeps every delivery on the consumers' pumps (tests
	// comparing both; direct.go)
	noDirectDelivery bool
}

// TLS-required levels (D-TLS-02).
const (
	TLSNotRequired = iota
	TLSRequiredExceptHTTP
	TLSRequired
)

// NewOptions returns the defaults of NSQ v1.3.0's nsqd (spec section 1).
func NewOptions() *Options {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	return &Options{
		ID:        DefaultNodeID(hostname),
		LogPrefix: "[nsqd] ",
		LogLevel:  lg.INFO,

		TCPAddress:        "0.0.0.0:4150",
		HTTPAddress:       "0.0.0.0:4151",
		HTTPSAddress:      "0.0.0.0:4152",
		BroadcastAddress:  hostname,
		BroadcastTCPPort:  0,
		BroadcastHTTPPort: 0,

		NSQLookupdTCPAddresses: make([]string, 0),
		AuthHTTPAddresses:      make([]string, 0),
		AuthHTTPRequestMethod:  "get",

		HTTPClientConnectTimeout: 2 * time.Second,
		HTTPClientRequestTimeout: 5 * time.Second,

		MemQueueSize:    10000,
		MaxBytesPerFile: 100 * 1024 * 1024,
		SyncEvery:       2500,
		SyncTimeout:     2 * time.Second,

		QueueScanInterval:        100 * time.Millisecond,
		QueueScanRefreshInterval: 5 * time.Second,
		QueueScanSelectionCount:  20,
		QueueScanWorkerPoolMax:   4,

		MsgTimeout:    60 * time.Second,
		MaxMsgTimeout: 15 * time.Minute,
		MaxMsgSize:    1024 * 1024,
		MaxBodySize:   5 * 1024 * 1024,
		MaxReqTimeout: 1 * time.Hour,
		ClientTimeout: 60 * time.Second,

		LookupdPingInterval:  defaultLookupdPingInterval,
		ProtocolMagicTimeout: defaultProtocolMagicTimeout,

		MaxHeartbeatInterval:   60 * time.Second,
		MaxRdyCount:            2500,
		MaxOutputBufferSize:    64 * 1024,
		MaxOutputBufferTimeout: 30 * time.Second,
		MinOutputBufferTimeout: 25 * time.Millisecond,
		OutputBufferTimeout:    250 * time.Millisecond,
		MaxChannelConsumers:    0,

		StatsdPrefix:        "nsq.%s",
		StatsdInterval:      60 * time.Second,
		StatsdMemStats:      true,
		StatsdUDPPacketSize: 508,

		E2EProcessingLatencyWindowTime: 10 * time.Minute,

		DeflateEnabled:  true,
		MaxDeflateLevel: 6,
		SnappyEnabled:   true,

		TLSMinVersion: tls.VersionTLS10,
	}
}

// DefaultNodeID is NSQ's default --node-id: CRC32-IEEE of the MD5 digest of
// the hostname, mod 1024 (D-CLI-06).
func DefaultNodeID(hostname string) int64 {
	h := md5.New()
	io.WriteString(h, hostname)
	return int64(crc32.ChecksumIEEE(h.Sum(nil)) % 1024)
}

// ExperimentTopologyAwareConsumption is the one experiment NSQ knows
// (D-TOPO-01).
const ExperimentTopologyAwareConsumption = "topology-aware-consumption"

// knownExperiments lists the --enable-experiment values we accept; NSQ
// accepts anything silently, we refuse unknown names.
var knownExperiments = []string{ExperimentTopologyAwareConsumption}

func (o *Options) hasExperiment(name string) bool {
	for _, e := range o.Experiments {
		if e == name {
			return true
		}
	}
	return false
}
