package nsqd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/protocol"
	"github.com/ournsq/nsq/internal/version"
)

var (
	heartbeatBytes = []byte("_heartbeat_")
	okBytes        = []byte("OK")
	closeWaitBytes = []byte("CLOSE_WAIT")
)

// protocolV2 executes V2 commands for one nsqd.
type protocolV2 struct {
	nsqd *NSQD
}

func fatal(code, format string, args ...interface{}) error {
	return protocol.NewFatal(code, fmt.Sprintf(format, args...))
}

func nonFatal(code, format string, args ...interface{}) error {
	return protocol.NewNonFatal(code, fmt.Sprintf(format, args...))
}

// ioLoop reads and executes commands until the client leaves or a fatal
// error. SUB starts the message pump beside it (waited for before return);
// until then a timer sends the heartbeats.
func (p *protocolV2) ioLoop(c *clientV2) error {
	c.pumpSettings = identifyEvent{
		OutputBufferTimeout: c.outputBufferTimeout,
		HeartbeatInterval:   c.heartbeatInterval,
		SampleRate:          c.sampleRate,
		MsgTimeout:          c.msgTimeout,
	}
	c.startHeartbeats(c.heartbeatInterval)

	var err error
	// a response held back for a pipelined command must go out before we
	// block reading, even if that command answers nothing (FIN, RDY, NOP...)
	unflushed := false
	for {
		// without a whole command line buffered, reading the next one
		// may block: gathered FINs are applied and held responses sent
		// first, and the read deadline moved (a buffered line needs no
		// socket read; commands with a body arm it themselves)
		lineReady := lineBuffered(c.reader)
		if c.fins.n > 0 && !lineReady {
			if err = p.finishPending(c); err != nil {
				err = fmt.Errorf("failed to send error - %w", err)
				break
			}
		}
		if unflushed && !lineReady {
			if err = c.flush(); err != nil {
				err = fmt.Errorf("failed to send response - %w", err)
				break
			}
			unflushed = false
		}
		if !lineReady {
			c.armReadDeadline()
			if c.reader.Buffered() == 0 {
				yieldBeforeRead()
			}
		}

		var line []byte
		line, err = c.reader.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = nil
			} else {
				err = fmt.Errorf("failed to read command - %w", err)
			}
			break
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}

		if c.fins.n > 0 && !isFINLine(line) {
			// FINs before this command take effect before it runs
			if err = p.finishPending(c); err != nil {
				err = fmt.Errorf("failed to send error - %w", err)
				break
			}
		}

		var response []byte
		response, err = p.execLine(c, line)
		if c.fins.n == finBatchSize || (err != nil && c.fins.n > 0) {
			// a full batch, or FINs before one that failed
			if sendErr := p.finishPending(c); sendErr != nil {
				err = fmt.Errorf("failed to send error - %w", sendErr)
				break
			}
		}
		if err != nil {
			var cerr *protocol.ClientError
			if !errors.As(err, &cerr) {
				cerr = protocol.NewFatal("E_INVALID", err.Error())
			}
			p.nsqd.logf(lg.ERROR, "[%s] - %s", c, cerr)
			if sendErr := c.sendNow(frameTypeError, []byte(cerr.Error())); sendErr != nil {
				err = fmt.Errorf("failed to send error - %w", sendErr)
				break
			}
			if cerr.Fatal {
				break
			}
			err = nil
			continue
		}
		if response != nil {
			// A pipelining client already sent its next command: let that
			// command's response go out in the same write(2). Flush once
			// nothing more is buffered, i.e. before we could block reading.
			flush := c.reader.Buffered() == 0
			if err = c.sendResponse(response, flush); err != nil {
				err = fmt.Errorf("failed to send response - %w", err)
				break
			}
			unflushed = !flush
		}
	}

	p.nsqd.logf(lg.INFO, "PROTOCOL(V2): [%s] exiting ioloop", c)
	c.stopHeartbeats()
	close(c.exitChan)
	// closing first unblocks a pump stuck writing to a client that stopped reading
	c.Conn.Close()
	if c.pumpDone != nil {
		<-c.pumpDone
	}
	if c.channel != nil {
		c.channel.RemoveClient(c.ID)
	}
	return err
}

// yieldBeforeRead is called before a read that will most likely find
// nothing and park the IOLoop. runtime.Gosched queues the goroutine and
// wakes an idle P to look for work; that spinning thread keeps a CPU awake
// for the microseconds in which the client's next command or a pump's
// message usually arrives, so it is picked up without waking a sleeping
// vCPU (on a VM, the costliest part of a round trip). Measured with
// bench/ab.sh, 4 rounds ABBA: PUB 1 conn +28 %, PUB 4 conns +31 %, MPUB
// +15 %, drain +17 %, REQ +19 %, with less nsqd CPU per message
// (docs/performance.md, session 7).
func yieldBeforeRead() { runtime.Gosched() }

// lineBuffered reports whether r holds a whole command line: reading it
// needs no socket read.
func lineBuffered(r *bufio.Reader) bool {
	n := r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// isFINLine reports whether line is a FIN command (see finBatch).
func isFINLine(line []byte) bool {
	return len(line) > 4 && string(line[:4]) == "FIN "
}

// execLine executes one command line (without its line ending).
func (p *protocolV2) execLine(c *clientV2, line []byte) ([]byte, error) {
	params := c.splitParams(line)
	// checked first: logf's arguments would box line even with DEBUG off
	if p.nsqd.logLevel.Load() <= lg.DEBUG {
		p.nsqd.logf(lg.DEBUG, "PROTOCOL(V2): [%s] %s", c, line)
	}
	return p.exec(c, params)
}

// splitParams splits line at every space, like bytes.Split(line, " ")
// (empty parameters included, each capped at its length), into c's reused
// slice. The result and its elements (which point into the reader's
// buffer) are valid only until the next command is read: handlers copy
// what they keep (names become strings, errors are formatted at once).
func (c *clientV2) splitParams(line []byte) [][]byte {
	params := c.params[:0]
	for {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			break
		}
		params = append(params, line[:i:i])
		line = line[i+1:]
	}
	params = append(params, line[:len(line):len(line)])
	c.params = params
	return params
}

func (p *protocolV2) exec(c *clientV2, params [][]byte) ([]byte, error) {
	if err := p.enforceTLSPolicy(c, params[0]); err != nil { // tls.go
		return nil, err
	}
	// the string conversion in a switch does not allocate
	switch string(params[0]) {
	case "FIN":
		return p.FIN(c, params)
	case "RDY":
		return p.RDY(c, params)
	case "REQ":
		return p.REQ(c, params)
	case "PUB":
		return p.PUB(c, params)
	case "MPUB":
		return p.MPUB(c, params)
	case "DPUB":
		return p.DPUB(c, params)
	case "NOP":
		return nil, nil
	case "TOUCH":
		return p.TOUCH(c, params)
	case "SUB":
		return p.SUB(c, params)
	case "CLS":
		return p.CLS(c, params)
	case "IDENTIFY":
		return p.IDENTIFY(c, params)
	case "AUTH":
		return p.AUTH(c, params)
	}
	return nil, fatal("E_INVALID", "invalid command %s", params[0])
}

// messagePump delivers messages to one client, respecting RDY, and sends
// heartbeats and flushes the output buffer (D-TCP-48..50).
// startPump hands the connection's deliveries and heartbeats to a message
// pump for channel, with the first IDENTIFY's settings.
func (p *protocolV2) startPump(c *clientV2, channel *Channel) {
	c.stopHeartbeats()
	c.pumpDone = make(chan struct{})
	go p.messagePump(c, channel, c.pumpSettings, c.pumpDone)
}

func (p *protocolV2) messagePump(c *clientV2, subChannel *Channel, settings identifyEvent, done chan struct{}) {
	defer close(done)

	var err error
	var memoryMsgChan chan *Message
	var backendMsgChan <-chan []byte
	// topology-aware consumption (D-TOPO-01): hand-off queues this client
	// listens on when it is in nsqd's zone/region; nil otherwise
	var zoneMsgChan, regionMsgChan chan *Message
	// IDENTIFY cannot follow SUB, so the locality is final
	subZoneChan, subRegionChan, locality := subChannel.topologyQueues(c)
	if subChannel.joinDirect(c, settings) {
		defer subChannel.leaveDirect(c)
	}
	// nil until the output buffer holds data that must go out on time
	var flusherChan <-chan time.Time
	sampleRate := settings.SampleRate
	msgTimeout := settings.MsgTimeout

	outputBufferTicker := newOptionalTicker(settings.OutputBufferTimeout)
	heartbeatTicker := newOptionalTicker(settings.HeartbeatInterval)
	defer func() {
		heartbeatTicker.Stop()
		outputBufferTicker.Stop()
	}()

	// flushed: nothing is waiting in the output buffer
	flushed := true
	// when this wake-up's deliveries start their in-flight timeout
	var now time.Time
	// Messages read from the disk queue are carved from its arrays
	var slab messageSlab
	// one wake-up's messages, delivered together (pump_batch.go)
	var batch deliveryBatch

	for {
		if !c.isReadyForMessages(subChannel) {
			// not ready: take nothing, and push out what is buffered
			memoryMsgChan = nil
			backendMsgChan = nil
			zoneMsgChan, regionMsgChan = nil, nil
			flusherChan = nil
			if !flushed {
				if err = c.flush(); err != nil {
					goto exit
				}
				flushed = true
			}
		} else {
			memoryMsgChan = subChannel.memq.ch()
			backendMsgChan = subChannel.backend.ReadChan()
			zoneMsgChan, regionMsgChan = subZoneChan, subRegionChan
			flusherChan = nil
			if !flushed {
				flusherChan = outputBufferTicker.C
			}
		}

		select {
		case <-flusherChan:
			if err = c.flush(); err != nil {
				goto exit
			}
			flushed = true
		case <-c.readyStateChan:
		case <-c.flushKick:
			// a publisher left part of a frame it delivered (direct.go)
			if err = c.flush(); err != nil {
				goto exit
			}
		case <-heartbeatTicker.C:
			if err = c.sendNow(frameTypeResponse, heartbeatBytes); err != nil {
				goto exit
			}
			flushed = true
		case b := <-backendMsgChan:
			now = time.Now() // one clock read per wake-up, burst included
			// the disk queue's read buffer, and once it is empty what its
			// forwarder holds (diskBackend.takeHeld), up to the room RDY
			// leaves; in flight and written as one batch (pump_batch.go)
			room := c.readyRoom(subChannel)
			for i := 0; i < room; i++ {
				if i > 0 {
					select {
					case b = <-backendMsgChan:
					default:
						b = takeHeldFrom(subChannel.backend)
					}
					if b == nil {
						break
					}
				}
				if msg := subChannel.fromBackend(b, &slab); msg != nil {
					batch.add(msg)
				}
			}
			refillFrom(subChannel.backend)
			if batch.n > 0 {
				flushed = false
			}
			if err = p.deliverBatch(c, subChannel, &batch, sampleRate, msgTimeout, now); err != nil {
				goto exit
			}
		case msg, ok := <-memoryMsgChan:
			now = time.Now() // one clock read per wake-up, burst included
			if !ok {
				continue // the queue moved to a bigger buffer
			}
			// take what is already queued without a trip through the
			// select above (a full select per message was a fifth of a
			// drain's CPU), up to the room RDY leaves; bounded so
			// heartbeats, flushes and exit are still seen promptly
			batch.add(msg)
			for room := c.readyRoom(subChannel); batch.n < room; {
				select {
				case msg, ok = <-memoryMsgChan:
				default:
					ok = false
				}
				if !ok {
					break
				}
				batch.add(msg)
			}
			locality.Add(uint64(batch.n))
			batch.fromMemq = batch.n
			flushed = false
			if err = p.deliverBatch(c, subChannel, &batch, sampleRate, msgTimeout, now); err != nil {
				goto exit
			}
		case msg := <-zoneMsgChan:
			now = time.Now()
			locality.Add(1)
			batch.add(msg)
			flushed = false
			if err = p.deliverBatch(c, subChannel, &batch, sampleRate, msgTimeout, now); err != nil {
				goto exit
			}
		case msg := <-regionMsgChan:
			now = time.Now()
			locality.Add(1)
			batch.add(msg)
			flushed = false
			if err = p.deliverBatch(c, subChannel, &batch, sampleRate, msgTimeout, now); err != nil {
				goto exit
			}
		case <-c.exitChan:
			goto exit
		}
	}

exit:
	if err != nil {
		p.nsqd.logf(lg.ERROR, "PROTOCOL(V2): [%s] messagePump error - %s", c, err)
		c.Conn.Close()
	}
}

// pumpBurst is how many queued messages the pump takes per wake-up.
const pumpBurst = 64

// optionalTicker is a ticker whose channel never fires when d <= 0.
type optionalTicker struct {
	*time.Ticker
	C <-chan time.Time
}

func newOptionalTicker(d time.Duration) optionalTicker {
	if d <= 0 {
		return optionalTicker{}
	}
	t := time.NewTicker(d)
	return optionalTicker{Ticker: t, C: t.C}
}

// Stop stops the ticker if there is one.
func (t optionalTicker) Stop() {
	if t.Ticker != nil {
		t.Ticker.Stop()
	}
}

func (p *protocolV2) IDENTIFY(c *clientV2, params [][]byte) ([]byte, error) {
	if c.state.Load() != stateInit {
		return nil, fatal("E_INVALID", "cannot IDENTIFY in current state")
	}
	body, err := p.readSizedBody(c, "IDENTIFY")
	if err != nil {
		return nil, err
	}

	var data identifyData
	if err := json.Unmarshal(body, &data); err != nil {
		return nil, fatal("E_BAD_BODY", "IDENTIFY failed to decode JSON body")
	}
	p.nsqd.logf(lg.DEBUG, "PROTOCOL(V2): [%s] %+v", c, data)

	if err := c.identify(data); err != nil {
		return nil, fatal("E_BAD_BODY", "IDENTIFY %s", err)
	}
	if !data.FeatureNegotiation {
		return okBytes, nil
	}

	opts := p.nsqd.getOpts()
	tlsv1, deflate, snappy := c.grantUpgrades(opts, data) // client_upgrade.go
	// the client's level counts only when deflate is granted (D-TCP-20)
	deflateLevel := 6
	if deflate && data.DeflateLevel > 0 {
		deflateLevel = data.DeflateLevel
	}
	if deflateLevel > opts.MaxDeflateLevel {
		deflateLevel = opts.MaxDeflateLevel
	}
	if c.compressionConflict(deflate, snappy) {
		return nil, fatal("E_IDENTIFY_FAILED", "cannot enable both deflate and snappy compression")
	}

	resp, err := json.Marshal(identifyResponse{
		MaxRdyCount:         opts.MaxRdyCount,
		Version:             version.Binary,
		MaxMsgTimeout:       int64(opts.MaxMsgTimeout / time.Millisecond),
		MsgTimeout:          int64(c.msgTimeout / time.Millisecond),
		TLSv1:               tlsv1,
		Deflate:             deflate,
		DeflateLevel:        deflateLevel,
		MaxDeflateLevel:     opts.MaxDeflateLevel,
		Snappy:              snappy,
		SampleRate:          c.sampleRate,
		AuthRequired:        len(opts.AuthHTTPAddresses) > 0,
		OutputBufferSize:    c.outputBufferSize,
		OutputBufferTimeout: int64(c.outputBufferTimeout / time.Millisecond),
		TopologyRegion:      opts.TopologyRegion,
		TopologyZone:        opts.TopologyZone,
	})
	if err != nil {
		return nil, fatal("E_IDENTIFY_FAILED", "IDENTIFY failed %s", err)
	}
	// JSON, then TLS → snappy → deflate, each acked by OK (D-TCP-21..25)
	if err := c.respondAndUpgrade(resp, tlsv1, snappy, deflate, deflateLevel); err != nil {
		return nil, fatal("E_IDENTIFY_FAILED", "IDENTIFY failed %s", err)
	}
	return nil, nil
}

// identifyResponse is the negotiated IDENTIFY answer; field order is the
// wire's key order (D-TCP-20).
type identifyResponse struct {
	MaxRdyCount         int64  `json:"max_rdy_count"`
	Version             string `json:"version"`
	MaxMsgTimeout       int64  `json:"max_msg_timeout"`
	MsgTimeout          int64  `json:"msg_timeout"`
	TLSv1               bool   `json:"tls_v1"`
	Deflate             bool   `json:"deflate"`
	DeflateLevel        int    `json:"deflate_level"`
	MaxDeflateLevel     int    `json:"max_deflate_level"`
	Snappy              bool   `json:"snappy"`
	SampleRate          int32  `json:"sample_rate"`
	AuthRequired        bool   `json:"auth_required"`
	OutputBufferSize    int    `json:"output_buffer_size"`
	OutputBufferTimeout int64  `json:"output_buffer_timeout"`
	TopologyRegion      string `json:"topology_region"`
	TopologyZone        string `json:"topology_zone"`
}

// readSizedBody reads an IDENTIFY/AUTH body: [int32 size][bytes], size
// checked against --max-body-size before anything is allocated.
func (p *protocolV2) readSizedBody(c *clientV2, cmd string) ([]byte, error) {
	c.armReadDeadline()
	size, err := protocol.ReadInt32(c.reader)
	if err != nil {
		return nil, fatal("E_BAD_BODY", "%s failed to read body size", cmd)
	}
	max := p.nsqd.getOpts().MaxBodySize
	if int64(size) > max {
		return nil, fatal("E_BAD_BODY", "%s body too big %d > %d", cmd, size, max)
	}
	if size <= 0 {
		return nil, fatal("E_BAD_BODY", "%s invalid body size %d", cmd, size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c.reader, body); err != nil {
		return nil, fatal("E_BAD_BODY", "%s failed to read body", cmd)
	}
	return body, nil
}

func (p *protocolV2) AUTH(c *clientV2, params [][]byte) ([]byte, error) {
	if c.state.Load() != stateInit {
		return nil, fatal("E_INVALID", "cannot AUTH in current state")
	}
	if len(params) != 1 {
		return nil, fatal("E_INVALID", "AUTH invalid number of parameters")
	}
	body, err := p.readSizedBody(c, "AUTH")
	if err != nil {
		return nil, err
	}
	return p.authenticate(c, body)
}

func (p *protocolV2) SUB(c *clientV2, params [][]byte) ([]byte, error) {
	if c.state.Load() != stateInit {
		return nil, fatal("E_INVALID", "cannot SUB in current state")
	}
	if c.heartbeatInterval <= 0 {
		return nil, fatal("E_INVALID", "cannot SUB with heartbeats disabled")
	}
	if len(params) < 3 {
		return nil, fatal("E_INVALID", "SUB insufficient number of parameters")
	}
	topicName := string(params[1])
	if !protocol.IsValidTopicName(topicName) {
		return nil, fatal("E_BAD_TOPIC", "SUB topic name %q is not valid", topicName)
	}
	channelName := string(params[2])
	if !protocol.IsValidChannelName(channelName) {
		return nil, fatal("E_BAD_CHANNEL", "SUB channel name %q is not valid", channelName)
	}
	if err := p.checkAuth(c, "SUB", topicName, channelName); err != nil {
		return nil, err
	}

	// An ephemeral topic/channel may be on its way out just as we join it:
	// retry once after a pause, as NSQ does (D-TCP-32).
	var channel *Channel
	for attempt := 1; ; attempt++ {
		topic := p.nsqd.GetTopic(topicName)
		channel = topic.GetChannel(channelName)
		if err := channel.AddClient(c.ID, c); err != nil {
			return nil, fatal("E_SUB_FAILED", "SUB failed %s", err)
		}
		if (channel.ephemeral && channel.Exiting()) || (topic.ephemeral && topic.Exiting()) {
			channel.RemoveClient(c.ID)
			if attempt < 2 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return nil, fatal("E_SUB_FAILED", "SUB failed to deleted topic/channel")
		}
		break
	}
	c.state.Store(stateSubscribed)
	c.channel = channel
	p.startPump(c, channel)
	return okBytes, nil
}

func (p *protocolV2) RDY(c *clientV2, params [][]byte) ([]byte, error) {
	state := c.state.Load()
	if state == stateClosing {
		p.nsqd.logf(lg.INFO, "PROTOCOL(V2): [%s] ignoring RDY after CLS in state ClientStateV2Closing", c)
		return nil, nil
	}
	if state != stateSubscribed {
		return nil, fatal("E_INVALID", "cannot RDY in current state")
	}
	count := int64(1)
	if len(params) > 1 {
		n, err := protocol.ParseUint(params[1])
		if err != nil {
			return nil, fatal("E_INVALID", "RDY could not parse count %s", params[1])
		}
		count = n
	}
	max := p.nsqd.getOpts().MaxRdyCount
	if count < 0 || count > max {
		return nil, fatal("E_INVALID", "RDY count %d out of range 0-%d", count, max)
	}
	c.setReadyCount(count)
	return nil, nil
}

// checkFinishState: FIN/REQ/TOUCH are legal while subscribed or closing.
func checkFinishState(c *clientV2, cmd string) error {
	if s := c.state.Load(); s != stateSubscribed && s != stateClosing {
		return fatal("E_INVALID", "cannot %s in current state", cmd)
	}
	return nil
}

func getMessageID(p []byte) (MessageID, error) {
	var id MessageID
	if len(p) != MsgIDLength {
		return id, fatal("E_INVALID", "invalid message ID")
	}
	copy(id[:], p)
	return id, nil
}

func (p *protocolV2) FIN(c *clientV2, params [][]byte) ([]byte, error) {
	if err := checkFinishState(c, "FIN"); err != nil {
		return nil, err
	}
	if len(params) < 2 {
		return nil, fatal("E_INVALID", "FIN insufficient number of params")
	}
	id, err := getMessageID(params[1])
	if err != nil {
		return nil, err
	}
	// applied by the IOLoop with the FINs that follow it, before
	// anything else (finishPending, pump_batch.go)
	c.fins.ids[c.fins.n] = id
	c.fins.n++
	return nil, nil
}

func (p *protocolV2) REQ(c *clientV2, params [][]byte) ([]byte, error) {
	if err := checkFinishState(c, "REQ"); err != nil {
		return nil, err
	}
	if len(params) < 3 {
		return nil, fatal("E_INVALID", "REQ insufficient number of params")
	}
	id, err := getMessageID(params[1])
	if err != nil {
		return nil, err
	}
	timeoutMs, err := protocol.ParseUint(params[2])
	if err != nil {
		return nil, fatal("E_INVALID", "REQ could not parse timeout %s", params[2])
	}
	// clamped, not refused (D-TCP-36)
	maxReq := p.nsqd.getOpts().MaxReqTimeout
	timeout := time.Duration(timeoutMs) * time.Millisecond
	if timeoutMs > int64(maxReq/time.Millisecond) {
		clamped := maxReq
		p.nsqd.logf(lg.INFO, "PROTOCOL(V2): [%s] REQ timeout %d out of range 0-%d. Setting to %d",
			c, timeoutMs*int64(time.Millisecond), maxReq, clamped)
		timeout = clamped
	}
	if err := c.channel.RequeueMessage(c.ID, id, timeout); err != nil {
		return nil, nonFatal("E_REQ_FAILED", "REQ %s failed %s", string(id[:]), err)
	}
	c.requeuedMessage()
	return nil, nil
}

func (p *protocolV2) TOUCH(c *clientV2, params [][]byte) ([]byte, error) {
	if err := checkFinishState(c, "TOUCH"); err != nil {
		return nil, err
	}
	if len(params) < 2 {
		return nil, fatal("E_INVALID", "TOUCH insufficient number of params")
	}
	id, err := getMessageID(params[1])
	if err != nil {
		return nil, err
	}
	if err := c.channel.TouchMessage(c.ID, id, c.msgTimeout); err != nil {
		return nil, nonFatal("E_TOUCH_FAILED", "TOUCH %s failed %s", string(id[:]), err)
	}
	return nil, nil
}

func (p *protocolV2) CLS(c *clientV2, params [][]byte) ([]byte, error) {
	if c.state.Load() != stateSubscribed {
		return nil, fatal("E_INVALID", "cannot CLS in current state")
	}
	c.startClose()
	return closeWaitBytes, nil
}

// pubTopicName returns a PUB/DPUB/MPUB topic name as a string and whether
// it is valid (D-NAME-01). The last topic published to is remembered
// (pubTopic): a producer mostly publishes to one topic, and then the name
// is neither copied nor checked again.
func (c *clientV2) pubTopicName(b []byte) (string, bool) {
	if t := c.lastPubTopic; t != nil && string(b) == t.name {
		return t.name, true
	}
	name := string(b)
	return name, protocol.IsValidTopicName(name)
}

// pubTopic is GetTopic for PUB/DPUB/MPUB, with the connection's last topic
// remembered: it skips nsqd's topic map and lock. A remembered topic that
// is exiting (deleted) is looked up again, as GetTopic would (it may
// return the same exiting topic, or a new one once it is gone).
func (p *protocolV2) pubTopic(c *clientV2, name string) *Topic {
	if t := c.lastPubTopic; t != nil && t.name == name && !t.Exiting() {
		return t
	}
	t := p.nsqd.GetTopic(name)
	c.lastPubTopic = t
	return t
}

// readMessageBody reads [int32 size][body] for PUB/DPUB, checking the size
// before allocating (D-TCP-40, D-TCP-43).
func (p *protocolV2) readMessageBody(c *clientV2, cmd string) ([]byte, error) {
	return p.readMessageBodyInto(c, cmd, nil)
}

// readMessageBodyInto is readMessageBody reading the body into spare when
// it fits (spare's contents are overwritten), else into a new slice.
func (p *protocolV2) readMessageBodyInto(c *clientV2, cmd string, spare []byte) ([]byte, error) {
	if !bodyBuffered(c.reader) {
		c.armReadDeadline()
	}
	size, err := protocol.ReadInt32(c.reader)
	if err != nil {
		return nil, fatal("E_BAD_MESSAGE", "%s failed to read message body size", cmd)
	}
	if size <= 0 {
		return nil, fatal("E_BAD_MESSAGE", "%s invalid message body size %d", cmd, size)
	}
	max := p.nsqd.getOpts().MaxMsgSize
	if int64(size) > max {
		return nil, fatal("E_BAD_MESSAGE", "%s message too big %d > %d", cmd, size, max)
	}
	var body []byte
	if int(size) <= cap(spare) {
		body = spare[:size]
	} else {
		body = make([]byte, size)
	}
	if _, err := io.ReadFull(c.reader, body); err != nil {
		return nil, fatal("E_BAD_MESSAGE", "%s failed to read message body", cmd)
	}
	return body, nil
}

// bodyBuffered reports whether r holds a whole [int32 size][body], as it
// mostly does for a PUB (it arrives with its command line): reading it
// then needs no socket read, and no read deadline.
func bodyBuffered(r *bufio.Reader) bool {
	n := r.Buffered()
	if n < 4 {
		return false
	}
	b, _ := r.Peek(4)
	size := int64(binary.BigEndian.Uint32(b))
	return int64(n)-4 >= size
}

func (p *protocolV2) PUB(c *clientV2, params [][]byte) ([]byte, error) {
	if len(params) < 2 {
		return nil, fatal("E_INVALID", "PUB insufficient number of parameters")
	}
	topicName, ok := c.pubTopicName(params[1])
	if !ok {
		return nil, fatal("E_BAD_TOPIC", "PUB topic name %q is not valid", topicName)
	}
	// the last PUB's message, if nothing kept it, is reused: a publisher
	// whose messages spill to disk then allocates nothing per message
	spare := c.pubSpare
	var spareBody []byte
	if spare != nil {
		spareBody = spare.Body[:cap(spare.Body)]
	}
	body, err := p.readMessageBodyInto(c, "PUB", spareBody)
	if err != nil {
		return nil, err
	}
	if err := p.checkAuth(c, "PUB", topicName, ""); err != nil {
		return nil, err
	}
	topic := p.pubTopic(c, topicName)
	var msg *Message
	if spare != nil {
		c.pubSpare = nil
		now := time.Now().UnixNano()
		*spare = Message{ID: topic.GenerateIDAt(now), Body: body, Timestamp: now}
		msg = spare
	} else {
		msg = newMessageFor(topic, body)
	}
	held, err := topic.putMessage(msg)
	if err != nil {
		return nil, fatal("E_PUB_FAILED", "PUB failed %s", err)
	}
	if !held && cap(msg.Body) <= maxSparePUBBody {
		c.pubSpare = msg
	}
	c.publishedMessage(topicName, 1)
	return okBytes, nil
}

// maxSparePUBBody caps the body a connection keeps for its next PUB
// (clientV2.pubSpare), so that one large message does not stay pinned to a
// connection that publishes no more.
const maxSparePUBBody = 4 << 10

func (p *protocolV2) DPUB(c *clientV2, params [][]byte) ([]byte, error) {
	if len(params) < 3 {
		return nil, fatal("E_INVALID", "DPUB insufficient number of parameters")
	}
	topicName, ok := c.pubTopicName(params[1])
	if !ok {
		return nil, fatal("E_BAD_TOPIC", "DPUB topic name %q is not valid", topicName)
	}
	timeoutMs, err := protocol.ParseUint(params[2])
	if err != nil {
		return nil, fatal("E_INVALID", "DPUB could not parse timeout %s", params[2])
	}
	maxMs := int64(p.nsqd.getOpts().MaxReqTimeout / time.Millisecond)
	if timeoutMs > maxMs {
		return nil, fatal("E_INVALID", "DPUB timeout %d out of range 0-%d", timeoutMs, maxMs)
	}
	body, err := p.readMessageBody(c, "DPUB")
	if err != nil {
		return nil, err
	}
	if err := p.checkAuth(c, "DPUB", topicName, ""); err != nil {
		return nil, err
	}
	topic := p.pubTopic(c, topicName)
	msg := newMessageFor(topic, body)
	msg.deferred = time.Duration(timeoutMs) * time.Millisecond
	if err := topic.PutMessage(msg); err != nil {
		return nil, fatal("E_DPUB_FAILED", "DPUB failed %s", err)
	}
	c.publishedMessage(topicName, 1)
	return okBytes, nil
}

func (p *protocolV2) MPUB(c *clientV2, params [][]byte) ([]byte, error) {
	if len(params) < 2 {
		return nil, fatal("E_INVALID", "MPUB insufficient number of parameters")
	}
	topicName, ok := c.pubTopicName(params[1])
	if !ok {
		// the code repeats in the text, as in NSQ
		return nil, fatal("E_BAD_TOPIC", "E_BAD_TOPIC MPUB topic name %q is not valid", topicName)
	}
	if err := p.checkAuth(c, "MPUB", topicName, ""); err != nil {
		return nil, err
	}
	opts := p.nsqd.getOpts()
	c.armReadDeadline()
	bodyLen, err := protocol.ReadInt32(c.reader)
	if err != nil {
		return nil, fatal("E_BAD_BODY", "MPUB failed to read body size")
	}
	if bodyLen <= 0 {
		return nil, fatal("E_BAD_BODY", "MPUB invalid body size %d", bodyLen)
	}
	if int64(bodyLen) > opts.MaxBodySize {
		return nil, fatal("E_BAD_BODY", "MPUB body too big %d > %d", bodyLen, opts.MaxBodySize)
	}

	topic := p.pubTopic(c, topicName)
	msgs, scratch, cerr := readMPUBPooled(c.reader, topic, opts.MaxMsgSize, opts.MaxBodySize)
	if cerr != nil {
		return nil, cerr
	}
	onlyOnDisk, err := topic.putMessages(msgs)
	if err != nil {
		return nil, fatal("E_MPUB_FAILED", "MPUB failed %s", err)
	}
	c.publishedMessage(topicName, uint64(len(msgs)))
	recycleMPUB(scratch, msgs, onlyOnDisk)
	return okBytes, nil
}
