package protocol

import (
	"strings"
	"testing"
)

// D-NAME-01
func TestNameValidation(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{strings.Repeat("a", 54) + "#ephemeral", true},
		{strings.Repeat("a", 55) + "#ephemeral", false},
		{"#ephemeral", false},
		{"x#ephemeralx", false},
		{"", false},
		{"bad!", false},
		{"with space", false},
		{"ok.name_-1", true},
	}
	for _, c := range cases {
		if got := IsValidTopicName(c.name); got != c.ok {
			t.Errorf("IsValidTopicName(%q) = %v, want %v", c.name, got, c.ok)
		}
		if got := IsValidChannelName(c.name); got != c.ok {
			t.Errorf("IsValidChannelName(%q) = %v, want %v", c.name, got, c.ok)
		}
	}
	if !IsEphemeral("a#ephemeral") || IsEphemeral("#ephemeral") || IsEphemeral("a") {
		t.Fatal("IsEphemeral wrong")
	}
}

func TestParseUint(t *testing.T) {
	good := map[string]int64{"0": 0, "1": 1, "2500": 2500, "9223372036854775807": 1<<63 - 1}
	for s, want := range good {
		if n, err := ParseUint([]byte(s)); err != nil || n != want {
			t.Errorf("ParseUint(%q) = %d, %v", s, n, err)
		}
	}
	for _, s := range []string{"", "-1", "+1", "1.0", " 1", "9223372036854775808", "1a"} {
		if _, err := ParseUint([]byte(s)); err == nil {
			t.Errorf("ParseUint(%q) succeeded", s)
		}
	}
}
