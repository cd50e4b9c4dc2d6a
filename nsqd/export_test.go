package nsqd

// Hooks for the external (nsqd_test) tests.

// DirectDeliveries reports how many messages publishers delivered to
// consumers of topic/channel themselves (direct.go), and how many of those
// frames the socket did not take whole.
func DirectDeliveries(n *NSQD, topic, channel string) (delivered, leftOver uint64) {
	ch, err := n.GetExistingTopic(topic)
	if err != nil {
		return 0, 0
	}
	c, err := ch.GetExistingChannel(channel)
	if err != nil {
		return 0, 0
	}
	return c.direct.delivered.Load(), c.direct.leftOver.Load()
}

// NoDirectDelivery keeps every delivery on the consumers' pumps.
func NoDirectDelivery(o *Options) { o.noDirectDelivery = true }
