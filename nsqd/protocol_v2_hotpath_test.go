package nsqd_test

import (
	"testing"
)

// A connection remembers the topic it last published to; once that topic
// is deleted, the next PUB/DPUB/MPUB on the connection creates it again,
// exactly as without the cache.
func TestPubToDeletedTopicRecreatesIt(t *testing.T) {
	n, addr := startNSQD(t, nil)
	p := dialV2(t, addr)
	p.write(pubCmd("cached", []byte("one")))
	p.expectResponse("OK")
	old, err := n.GetExistingTopic("cached")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteExistingTopic("cached"); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range [][]byte{
		pubCmd("cached", []byte("two")),
		dpubCmd("cached", 1000, []byte("three")),
		mpubCmd("cached", []byte("four"), []byte("five")),
	} {
		p.write(cmd)
		p.expectResponse("OK")
		topic, err := n.GetExistingTopic("cached")
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		if topic == old {
			t.Fatalf("command %d published to the deleted topic", i)
		}
	}
	// another topic, then back: each lands where it is named
	p.write(pubCmd("other", []byte("x")))
	p.expectResponse("OK")
	p.write(pubCmd("cached", []byte("six")))
	p.expectResponse("OK")
	if _, err := n.GetExistingTopic("other"); err != nil {
		t.Fatal(err)
	}
	if topic, _ := n.GetExistingTopic("cached"); topic.MessageCount() != 5 {
		t.Fatalf("recreated topic counts %d messages, want 5", topic.MessageCount())
	}
	// invalid names are still refused after a valid one
	p.write(pubCmd("bad!", []byte("x")))
	p.expectError(`E_BAD_TOPIC PUB topic name "bad!" is not valid`)
}
