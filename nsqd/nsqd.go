package nsqd

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ournsq/nsq/internal/dirlock"
	"github.com/ournsq/nsq/internal/httpapi"
	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
	"github.com/ournsq/nsq/internal/version"
)

// ErrLoadMetadata marks a New failure caused by an unreadable nsqd.dat, which
// NSQ reports as "failed to load metadata - ..." (D-META-03).
var ErrLoadMetadata = errors.New("failed to load metadata")

type loadMetadataError struct{ err error }

func (e *loadMetadataError) Error() string        { return "failed to load metadata - " + e.err.Error() }
func (e *loadMetadataError) Is(target error) bool { return target == ErrLoadMetadata }
func (e *loadMetadataError) Unwrap() error        { return e.err }

// NSQD is one broker instance.
type NSQD struct {
	clientIDSequence atomic.Int64

	sync.RWMutex // guards topicMap
	topicMap     map[string]*Topic

	opts     atomic.Pointer[Options]
	optsMu   sync.Mutex // serialises swapOpts
	logger   lg.Logger
	logLevel lg.AtomicLevel

	dl        *dirlock.DirLock
	isLoading atomic.Bool
	health    atomic.Pointer[healthState]
	prober    healthProber // clears health when the data path works again (health.go)
	startTime time.Time

	tcpListener          net.Listener
	tcpServer            *tcpServer
	httpListener         net.Listener
	httpServer           *httpapi.Server
	tlsListeners         // TLS config, HTTPS listener and server (tls.go)
	protocolMagicTimeout time.Duration

	lookupPeers         atomic.Pointer[[]*lookupPeer] // snapshot for readers
	lookupNotify        lookupNotifier
	lookupdAddrsChanged chan struct{}
	lookupdPingInterval time.Duration
	httpClient          *http.Client
	authHTTP            authHTTPClient // auth server client (auth.go)

	persistMu         sync.Mutex // serialises nsqd.dat writes
	metadataDirty     chan struct{}
	channelSetChanged chan struct{}
	scanner           queueScanner // queue_scan.go
	exitChan          chan struct{}
	exitOnce          sync.Once
	// lifecycleMu orders Main's start-up against Exit: once exiting is set,
	// Main starts nothing, so waitGroup.Add never races waitGroup.Wait
	lifecycleMu sync.Mutex
	started     bool
	exiting     bool
	waitGroup   sync.WaitGroup
}

type healthState struct{ err error }

// New validates opts, locks the data path, binds the TCP listener and loads
// the topics and channels of nsqd.dat.
func New(opts *Options) (*NSQD, error) {
	if opts.DataPath == "" {
		cwd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		opts.DataPath = cwd
	}
	if opts.Logger == nil {
		opts.Logger = lg.New(opts.LogPrefix)
	}

	n := &NSQD{
		topicMap:             make(map[string]*Topic),
		logger:               opts.Logger,
		startTime:            time.Now(),
		dl:                   dirlock.New(opts.DataPath),
		protocolMagicTimeout: opts.ProtocolMagicTimeout,
		metadataDirty:        make(chan struct{}, 1),
		lookupNotify:         lookupNotifier{signal: make(chan struct{}, 1)},
		lookupdAddrsChanged:  make(chan struct{}, 1),
		lookupdPingInterval:  opts.LookupdPingInterval,
		httpClient:           newHTTPClient(opts.HTTPClientConnectTimeout, opts.HTTPClientRequestTimeout),
		channelSetChanged:    make(chan struct{}, 1),
		scanner:              newQueueScanner(),
		exitChan:             make(chan struct{}),
	}
	n.opts.Store(opts)
	n.logLevel.Store(opts.LogLevel)
	n.health.Store(&healthState{})
	n.tcpServer = newTCPServer(n)

	if err := n.dl.Lock(); err != nil {
		return nil, fmt.Errorf("failed to lock data-path: %w", err)
	}
	fail := func(err error) (*NSQD, error) {
		if n.tcpListener != nil {
			n.tcpListener.Close()
		}
		if n.httpListener != nil {
			n.httpListener.Close()
		}
		if n.httpsListener != nil {
			n.httpsListener.Close()
		}
		n.dl.Unlock()
		return nil, err
	}
	if err := validateOptions(opts); err != nil {
		return fail(err)
	}
	n.logf(lg.INFO, "%s", version.String("nsqd"))
	n.logf(lg.INFO, "ID: %d", opts.ID)

	var err error
	n.tcpListener, err = listen(opts.TCPAddress)
	if err != nil {
		return fail(fmt.Errorf("listen (%s) failed - %w", opts.TCPAddress, err))
	}
	if opts.HTTPAddress != "" {
		n.httpListener, err = listen(opts.HTTPAddress)
		if err != nil {
			return fail(fmt.Errorf("listen (%s) failed - %w", opts.HTTPAddress, err))
		}
	}
	if err := n.listenHTTPS(opts); err != nil { // tls.go
		return fail(err)
	}
	// broadcast ports default to the bound ones (0 for unix sockets)
	if opts.BroadcastTCPPort == 0 {
		opts.BroadcastTCPPort = max(listenerPort(n.tcpListener), 0)
	}
	if opts.BroadcastHTTPPort == 0 && n.httpListener != nil {
		opts.BroadcastHTTPPort = max(listenerPort(n.httpListener), 0)
	}

	n.logf(lg.INFO, "NSQ: persisting topic/channel metadata to %s", n.metadataFile())
	if err := n.loadMetadata(); err != nil {
		n.closeTopics()
		return fail(&loadMetadataError{err})
	}
	if err := n.PersistMetadata(); err != nil {
		n.closeTopics()
		return fail(fmt.Errorf("failed to persist metadata - %w", err))
	}
	n.logf(lg.INFO, "TCP: listening on %s", n.tcpListener.Addr())
	if n.httpListener != nil {
		n.httpServer = httpapi.NewServer(n.httpListener, n.plainHTTPHandler(), "HTTP", n.logf)
		n.httpServer.Fast = n.httpFastRoute()
	}
	if n.httpsListener != nil {
		n.httpsServer = httpapi.NewServer(n.httpsListener, newHTTPServer(n), "HTTPS", n.logf)
	}
	return n, nil
}

func validateOptions(opts *Options) error {
	if opts.MaxDeflateLevel < 1 || opts.MaxDeflateLevel > 9 {
		return errors.New("--max-deflate-level must be [1,9]")
	}
	if opts.ID < 0 || opts.ID >= 1024 {
		return errors.New("--node-id must be [0,1024)")
	}
	for _, e := range opts.Experiments {
		if !slices.Contains(knownExperiments, e) {
			return fmt.Errorf("--enable-experiment: unknown experiment %q (known: %s)",
				e, strings.Join(knownExperiments, ", "))
		}
	}
	// NSQ crashes on the first topic instead
	if opts.MemQueueSize < 0 {
		return fmt.Errorf("--mem-queue-size must be >= 0 (got %d)", opts.MemQueueSize)
	}
	if opts.MaxMsgSize <= 0 || opts.MaxMsgSize > 1<<31-1-diskHeaderLengthV1 {
		return fmt.Errorf("--max-msg-size must be in [1,%d]", 1<<31-1-diskHeaderLengthV1)
	}
	if opts.MaxBodySize <= 0 || opts.MaxBodySize > 1<<31-1 {
		return fmt.Errorf("--max-body-size must be in [1,%d]", 1<<31-1)
	}
	if _, err := tlsSettings(opts); err != nil { // tls.go
		return err
	}
	if err := validateAuthOptions(opts); err != nil {
		return err
	}
	if err := validateE2EPercentiles(opts); err != nil { // e2e.go
		return err
	}
	if err := validateStatsdOptions(opts); err != nil { // statsd.go
		return err
	}
	return nil
}

func (n *NSQD) getOpts() *Options { return n.opts.Load() }

func (n *NSQD) logf(level lg.LogLevel, f string, args ...interface{}) {
	lg.Logf(n.logger, n.logLevel.Load(), level, f, args...)
}

// RealTCPAddr is the bound TCP address.
func (n *NSQD) RealTCPAddr() net.Addr { return n.tcpListener.Addr() }

// RealHTTPAddr is the bound HTTP address, nil when HTTP is disabled.
func (n *NSQD) RealHTTPAddr() net.Addr {
	if n.httpListener == nil {
		return nil
	}
	return n.httpListener.Addr()
}

// tcpPort and httpPort are what /info reports: -1 for a unix socket, 0 for
// a disabled HTTP listener (D-HTTP-13).
func (n *NSQD) tcpPort() int { return listenerPort(n.tcpListener) }

func (n *NSQD) httpPort() int {
	if n.httpListener == nil {
		return 0
	}
	return listenerPort(n.httpListener)
}

// swapOpts replaces the options with a modified copy; readers holding the
// old pointer keep a consistent snapshot (D-CFG-10).
func (n *NSQD) swapOpts(modify func(*Options)) {
	n.optsMu.Lock()
	defer n.optsMu.Unlock()
	o := *n.getOpts()
	modify(&o)
	n.opts.Store(&o)
}

// lookupdAddressesChanged makes the lookup loop re-sync its peers (D-LKP-08).
func (n *NSQD) lookupdAddressesChanged() {
	select {
	case n.lookupdAddrsChanged <- struct{}{}:
	default:
	}
}

// SetHealth records the outcome of the last backend write (D-QUEUE-04).
func (n *NSQD) SetHealth(err error) {
	if err == nil && n.health.Load().err == nil {
		return // the common case costs one atomic load
	}
	n.health.Store(&healthState{err: err})
	if err != nil {
		n.prober.kick() // health.go
	}
}

// IsHealthy reports whether the last backend write succeeded.
func (n *NSQD) IsHealthy() bool { return n.health.Load().err == nil }

// GetHealth is "OK" or "NOK - <error>" (/ping, /stats).
func (n *NSQD) GetHealth() string {
	if err := n.health.Load().err; err != nil {
		return "NOK - " + err.Error()
	}
	return "OK"
}

// Main serves until Exit. It returns an error if a listener fails. Calling
// it after Exit, or twice, returns at once.
func (n *NSQD) Main() error {
	errCh := make(chan error, 3) // one per listener: TCP, HTTP, HTTPS
	n.lifecycleMu.Lock()
	if n.exiting || n.started {
		n.lifecycleMu.Unlock()
		return nil
	}
	n.started = true
	n.waitGroup.Add(4)
	go func() {
		defer n.waitGroup.Done()
		errCh <- n.tcpServer.serve(n.tcpListener)
	}()
	go func() {
		defer n.waitGroup.Done()
		n.lookupLoop()
	}()
	go func() {
		defer n.waitGroup.Done()
		n.queueScanLoop()
	}()
	go func() {
		defer n.waitGroup.Done()
		n.metadataLoop()
	}()
	n.waitGroup.Add(1)
	go func() {
		defer n.waitGroup.Done()
		n.healthLoop() // health.go
	}()
	if n.getOpts().StatsdAddress != "" {
		n.waitGroup.Add(1)
		go func() {
			defer n.waitGroup.Done()
			n.statsdLoop() // statsd.go
		}()
	}
	if n.httpServer != nil {
		n.waitGroup.Add(1)
		go func() {
			defer n.waitGroup.Done()
			errCh <- n.httpServer.Serve()
		}()
	}
	if n.httpsServer != nil {
		n.waitGroup.Add(1)
		go func() {
			defer n.waitGroup.Done()
			errCh <- n.httpsServer.Serve()
		}()
	}
	n.lifecycleMu.Unlock()

	for {
		select {
		case <-n.exitChan:
			return nil
		case err := <-errCh:
			if err != nil {
				n.logf(lg.FATAL, "listener failed - %s", err)
				return err
			}
		}
	}
}

// Exit shuts down gracefully (D-SHUT-01): stop accepting, close clients,
// persist metadata, flush every topic and channel (memory, in-flight and
// deferred messages) to disk, stop the loops, release the data path.
func (n *NSQD) Exit() {
	n.exitOnce.Do(func() {
		n.lifecycleMu.Lock()
		n.exiting = true
		n.lifecycleMu.Unlock()

		n.tcpListener.Close()
		n.cancelAuthQueries() // clients waiting on an auth server let go at once
		n.tcpServer.closeAll()
		if n.httpServer != nil {
			n.httpServer.Shutdown(5 * time.Second)
		}
		if n.httpsServer != nil {
			n.httpsServer.Shutdown(5 * time.Second)
		}

		if err := n.PersistMetadata(); err != nil {
			n.logf(lg.ERROR, "failed to persist metadata - %s", err)
		}
		n.logf(lg.INFO, "NSQ: closing topics")
		n.closeTopics()

		close(n.exitChan)
		n.waitGroup.Wait()
		n.dl.Unlock()
		n.logf(lg.INFO, "NSQ: bye")
	})
}

func (n *NSQD) closeTopics() {
	n.RLock()
	topics := make([]*Topic, 0, len(n.topicMap))
	for _, t := range n.topicMap {
		topics = append(topics, t)
	}
	n.RUnlock()
	for _, t := range topics {
		t.Close()
	}
}

// GetTopic returns the named topic, creating (and starting) it if needed.
func (n *NSQD) GetTopic(topicName string) *Topic {
	n.RLock()
	t, ok := n.topicMap[topicName]
	n.RUnlock()
	if ok {
		return t
	}

	n.Lock()
	t, ok = n.topicMap[topicName]
	if ok {
		n.Unlock()
		return t
	}
	deleteCallback := func(t *Topic) { n.DeleteExistingTopic(t.name) }
	t = newTopic(topicName, n, deleteCallback)
	n.topicMap[topicName] = t
	n.Unlock()

	n.logf(lg.INFO, "TOPIC(%s): created", t.name)
	n.lookupNotify.push(t)
	// while loading metadata the loader starts the topic once its
	// channels exist
	if n.isLoading.Load() {
		return t
	}
	// channels lookupd knows get the topic's first messages too
	n.precreateChannels(t)
	t.Start()
	n.metadataChanged()
	return t
}

// GetExistingTopic returns a topic or an error if it does not exist.
func (n *NSQD) GetExistingTopic(topicName string) (*Topic, error) {
	n.RLock()
	defer n.RUnlock()
	t, ok := n.topicMap[topicName]
	if !ok {
		return nil, errors.New("topic does not exist")
	}
	return t, nil
}

// DeleteExistingTopic deletes a topic, its channels and their data.
func (n *NSQD) DeleteExistingTopic(topicName string) error {
	n.RLock()
	t, ok := n.topicMap[topicName]
	n.RUnlock()
	if !ok {
		return errors.New("topic does not exist")
	}
	// delete first so that no new messages are accepted or routed, then
	// drop it from the map
	t.Delete()
	n.Lock()
	if n.topicMap[topicName] == t {
		delete(n.topicMap, topicName)
	}
	n.Unlock()
	n.metadataChanged()
	return nil
}

// topology hooks: lookupd is told (D-LKP-05) and nsqd.dat rewritten
func (n *NSQD) channelCreated(c *Channel) {
	n.lookupNotify.push(c)
	n.metadataChanged()
}

func (n *NSQD) channelDeleted(c *Channel) {
	n.lookupNotify.push(c)
	n.metadataChanged()
}

func (n *NSQD) topicDeleted(t *Topic) {
	n.lookupNotify.push(t)
	n.metadataChanged()
}

// notifyChannelSetChanged makes the queue scanner re-read the channel list
// now instead of at its next refresh.
func (n *NSQD) notifyChannelSetChanged() {
	select {
	case n.channelSetChanged <- struct{}{}:
	default:
	}
}

// metadataChanged asks the metadata writer to persist nsqd.dat; bursts of
// changes (e.g. creating many channels) coalesce into one write.
func (n *NSQD) metadataChanged() {
	if n.isLoading.Load() {
		return
	}
	select {
	case n.metadataDirty <- struct{}{}:
	default:
	}
}

func (n *NSQD) metadataLoop() {
	for {
		select {
		case <-n.metadataDirty:
			if err := n.PersistMetadata(); err != nil {
				n.logf(lg.ERROR, "failed to persist metadata - %s", err)
			}
		case <-n.exitChan:
			return
		}
	}
}

// metadata is the nsqd.dat document (D-META-01).
type metadata struct {
	Topics  []topicMetadata `json:"topics"`
	Version string          `json:"version"`
}

type topicMetadata struct {
	Name     string            `json:"name"`
	Paused   bool              `json:"paused"`
	Channels []channelMetadata `json:"channels"`
}

type channelMetadata struct {
	Name   string `json:"name"`
	Paused bool   `json:"paused"`
}

func (n *NSQD) metadataFile() string {
	return filepath.Join(n.getOpts().DataPath, "nsqd.dat")
}

func (n *NSQD) loadMetadata() error {
	n.isLoading.Store(true)
	defer n.isLoading.Store(false)

	fn := n.metadataFile()
	data, err := os.ReadFile(fn)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("failed to read metadata from %s - %w", fn, err)
	}
	var m metadata
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("failed to parse metadata in %s - %w", fn, err)
	}

	for _, tm := range m.Topics {
		if !protocol.IsValidTopicName(tm.Name) {
			n.logf(lg.WARN, "skipping creation of invalid topic %s", tm.Name)
			continue
		}
		t := n.GetTopic(tm.Name)
		if tm.Paused {
			t.Pause()
		}
		for _, cm := range tm.Channels {
			if !protocol.IsValidChannelName(cm.Name) {
				n.logf(lg.WARN, "skipping creation of invalid channel %s", cm.Name)
				continue
			}
			c := t.GetChannel(cm.Name)
			if cm.Paused {
				c.Pause()
			}
		}
		t.Start()
	}
	return nil
}

// PersistMetadata writes nsqd.dat atomically: temp file, fsync, rename,
// fsync of the directory.
func (n *NSQD) PersistMetadata() error {
	n.persistMu.Lock()
	defer n.persistMu.Unlock()

	m := metadata{Topics: []topicMetadata{}, Version: version.Binary}
	n.RLock()
	topics := make([]*Topic, 0, len(n.topicMap))
	for _, t := range n.topicMap {
		topics = append(topics, t)
	}
	n.RUnlock()
	sort.Slice(topics, func(i, j int) bool { return topics[i].name < topics[j].name })
	for _, t := range topics {
		if t.ephemeral {
			continue
		}
		tm := topicMetadata{Name: t.name, Paused: t.IsPaused()}
		for _, c := range t.channels() {
			if c.ephemeral {
				continue
			}
			tm.Channels = append(tm.Channels, channelMetadata{Name: c.name, Paused: c.IsPaused()})
		}
		m.Topics = append(m.Topics, tm)
	}
	data, err := json.Marshal(&m)
	if err != nil {
		return err
	}

	fn := n.metadataFile()
	tmp := fmt.Sprintf("%s.%d.tmp", fn, rand.Int())
	if err := writeSyncFile(tmp, data); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, fn); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(fn))
}

func writeSyncFile(fn string, data []byte) error {
	f, err := os.OpenFile(fn, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// channels lists every channel of every topic (for the queue scanner).
func (n *NSQD) channels() []*Channel {
	n.RLock()
	topics := make([]*Topic, 0, len(n.topicMap))
	for _, t := range n.topicMap {
		topics = append(topics, t)
	}
	n.RUnlock()
	var chans []*Channel
	for _, t := range topics {
		t.RLock()
		for _, c := range t.channelMap {
			chans = append(chans, c)
		}
		t.RUnlock()
	}
	return chans
}
