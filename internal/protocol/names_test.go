package protocol

import (
	"bufio"
	"io"
	"regexp"
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

// isValidName must accept exactly what NSQ's regexp accepts.
var nsqNameRegex = regexp.MustCompile(`^[.a-zA-Z0-9_-]+(#ephemeral)?$`)

func nsqValidName(name string) bool {
	return len(name) >= 1 && len(name) <= 64 && nsqNameRegex.MatchString(name)
}

func TestNameValidationMatchesRegexp(t *testing.T) {
	alphabet := []byte(".-_aZ09#eph mral\n\x00\xff")
	var names []string
	for _, s := range []string{"", "#", "#ephemeral", "a#ephemeral", "a#ephemeral\n", "a\n", "#ephemeral#ephemeral",
		"a#ephemeral#ephemeral", "a#Ephemeral", "a#ephemera", "ephemeral", strings.Repeat("a", 54) + "#ephemeral"} {
		names = append(names, s)
	}
	// every string of up to 3 symbols of the alphabet, then each with the suffix
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		names = append(names, prefix, prefix+"#ephemeral")
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+string(c), n-1)
		}
	}
	gen("", 3)
	for c := 0; c < 256; c++ {
		names = append(names, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"#ephemeral")
	}
	for _, name := range names {
		if got, want := isValidName(name), nsqValidName(name); got != want {
			t.Errorf("isValidName(%q) = %v, regexp says %v", name, got, want)
		}
	}
}

func FuzzNameValidation(f *testing.F) {
	for _, s := range []string{"a", "a#ephemeral", "#ephemeral", "x#ephemeralx", "bad!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := isValidName(name), nsqValidName(name); got != want {
			t.Fatalf("isValidName(%q) = %v, regexp says %v", name, got, want)
		}
	})
}

func TestReadInt32(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
		err  error
	}{
		{"\x00\x00\x01\x02rest", 258, nil},
		{"\xff\xff\xff\xff", -1, nil},
		{"", 0, io.EOF},
		{"\x00\x01", 0, io.ErrUnexpectedEOF},
	} {
		for _, r := range []io.Reader{bufio.NewReader(strings.NewReader(tc.in)), strings.NewReader(tc.in)} {
			got, err := ReadInt32(r)
			if got != tc.want || err != tc.err {
				t.Errorf("ReadInt32(%T %q) = %d, %v; want %d, %v", r, tc.in, got, err, tc.want, tc.err)
			}
		}
	}
	br := bufio.NewReader(strings.NewReader("\x00\x00\x00\x07\x00\x00\x00\x08"))
	if n := testing.AllocsPerRun(1, func() { ReadInt32(br) }); n != 0 {
		t.Errorf("ReadInt32 from a bufio.Reader allocates %v times", n)
	}
}
