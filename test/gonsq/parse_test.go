package gonsq

import (
	"strings"
	"testing"
)

// TestParseAndFeatureCheck guards the checks TestGoNSQSuite relies on: a
// TLS/Deflate/Snappy test that passed without upgrading is reported.
func TestParseAndFeatureCheck(t *testing.T) {
	out := `=== RUN   TestConsumer
--- PASS: TestConsumer (0.11s)
=== RUN   TestConsumerTLSSnappy
    mock_test.go:25: INF    2 [t/ch] (127.0.0.1:1) upgrading to TLS
--- PASS: TestConsumerTLSSnappy (0.11s)
=== RUN   TestConsumerDeflate
    mock_test.go:25: DBG    3 [t/ch] IDENTIFY response: &{Deflate:false}
--- FAIL: TestConsumerDeflate (0.11s)
=== RUN   TestSkipped
--- SKIP: TestSkipped (0.00s)
`
	results, sections := parseGoTest(out)
	want := map[string]string{"TestConsumer": "PASS", "TestConsumerTLSSnappy": "PASS",
		"TestConsumerDeflate": "FAIL", "TestSkipped": "SKIP"}
	for name, res := range want {
		if results[name] != res {
			t.Errorf("%s: %q, want %q", name, results[name], res)
		}
	}
	if why := featureCheck("TestConsumer", sections["TestConsumer"]); why != "" {
		t.Errorf("TestConsumer: unexpected %q", why)
	}
	if why := featureCheck("TestConsumerTLSSnappy", sections["TestConsumerTLSSnappy"]); why != `no "upgrading to Snappy" in its log` {
		t.Errorf("TestConsumerTLSSnappy: %q", why)
	}
	if why := featureCheck("TestConsumerDeflate", sections["TestConsumerDeflate"]); why != `no "upgrading to Deflate" in its log` {
		t.Errorf("TestConsumerDeflate: %q", why)
	}
}

func TestKnownLateLogPanic(t *testing.T) {
	late := "--- PASS: TestProducerHeartbeat (1.21s)\nPASS\n" +
		"panic: Log in goroutine after TestConsumerBackoffDisconnect has completed: ERR   12 [t/ch] (127.0.0.1:1) error connecting to nsqd\n"
	if name, ok := knownLateLogPanic(late); !ok || name != "TestConsumerBackoffDisconnect" {
		t.Errorf("after PASS, mock test: %q %v, want accepted", name, ok)
	}
	if _, ok := knownLateLogPanic(strings.Replace(late, "TestConsumerBackoffDisconnect", "TestConsumerTLS", 1)); ok {
		t.Error("a test that talks to our nsqd must not be excused")
	}
	if _, ok := knownLateLogPanic(strings.Replace(late, "PASS\n", "", 1)); ok {
		t.Error("a panic before the suite's PASS must not be excused")
	}
	if _, ok := knownLateLogPanic("PASS\nok\n"); ok {
		t.Error("no panic: nothing to excuse")
	}
}

func TestStalePortRE(t *testing.T) {
	for s, want := range map[string]bool{`"127.0.0.1:4150"`: true, `SendMessage(t, 4151,`: true,
		`"127.0.0.1:41503"`: false, `"127.0.0.1:34150"`: false, `:4160`: true} {
		if got := stalePortRE.MatchString(s); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}
