// Package nsqd is the message broker: topics, channels, queues and the TCP
// protocol V2. (stub: being written)
package nsqd

import (
	"errors"
	"net"
)

// NSQD is one broker instance.
type NSQD struct {
	opts *Options
}

// New validates opts, locks the data path and binds the listeners.
func New(opts *Options) (*NSQD, error) { return nil, errors.New("not implemented") }

// Main loads metadata and serves until Exit; it returns an error when a
// listener fails.
func (n *NSQD) Main() error { return nil }

// Exit shuts down gracefully: stop accepting, close clients, flush queues to
// disk, persist metadata, release the data-path lock.
func (n *NSQD) Exit() {}

// RealTCPAddr is the bound TCP address.
func (n *NSQD) RealTCPAddr() net.Addr { return nil }
