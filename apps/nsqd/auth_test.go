package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestBinaryAuthMethod: --auth-http-request-method must be exactly get or
// post (D-CLI-16); --auth-http-address is a repeatable flag (D-CLI-15).
func TestBinaryAuthMethod(t *testing.T) {
	for _, m := range []string{"put", "POST"} {
		code, _, stderr := runBinary(t, "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0",
			"--auth-http-address=127.0.0.1:1", "--auth-http-request-method="+m)
		re := regexp.MustCompile(`^\[nsqd\] ` + tsRE + ` FATAL: ` +
			regexp.QuoteMeta("failed to instantiate nsqd - --auth-http-request-method must be post or get") + "\n$")
		lines := strings.SplitAfter(stderr, "\n")
		if code != 1 || len(lines) < 2 || !re.MatchString(lines[len(lines)-2]) {
			t.Errorf("%s: exit %d, stderr %q", m, code, stderr)
		}
	}
	code, _, usage := runBinary(t, "--help")
	if !strings.Contains(usage, "  -auth-http-address ") || !strings.Contains(usage, "  -auth-http-request-method ") {
		t.Errorf("--help (exit %d) lacks the auth flags: %s", code, usage)
	}
}
