package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ournsq/nsq/internal/protocol"
)

// FuzzNewReqParams: any raw query string either parses exactly as
// url.ParseQuery does or is a 400 INVALID_REQUEST (D-HTTP-06), and the
// topic/channel helpers only ever return names that are valid, or a 400
// naming the missing or invalid argument.
func FuzzNewReqParams(f *testing.F) {
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := &http.Request{Method: "GET", URL: &url.URL{Path: "/x", RawQuery: rawQuery}}
		p, err := NewReqParams(req)
		want, werr := url.ParseQuery(rawQuery)
		if err != nil {
			var e Err
			if werr == nil || !errors.As(err, &e) || e.Code != 400 || e.Text != "INVALID_REQUEST" {
				t.Fatalf("NewReqParams(%q): %v (url.ParseQuery: %v)", rawQuery, err, werr)
			}
			return
		}
		if werr != nil {
			t.Fatalf("NewReqParams(%q) accepted what url.ParseQuery refuses: %v", rawQuery, werr)
		}
		for k, vs := range want {
			v, ok := p.Get(k)
			if !ok || v != vs[0] || len(p.GetAll(k)) != len(vs) {
				t.Fatalf("Get(%q) = %q %v, want %q", k, v, ok, vs)
			}
		}
		topic, channel, err := GetTopicChannelArgs(p)
		if err != nil {
			var e Err
			if !errors.As(err, &e) || e.Code != 400 {
				t.Fatalf("GetTopicChannelArgs: %v", err)
			}
			switch e.Text {
			case "MISSING_ARG_TOPIC", "INVALID_ARG_TOPIC", "MISSING_ARG_CHANNEL", "INVALID_ARG_CHANNEL":
			default:
				t.Fatalf("GetTopicChannelArgs: unexpected %q", e.Text)
			}
			return
		}
		if !protocol.IsValidTopicName(topic) || !protocol.IsValidChannelName(channel) {
			t.Fatalf("GetTopicChannelArgs returned invalid names %q %q", topic, channel)
		}
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("NSQ_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set NSQ_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	seeds := map[string]string{
		"empty":            "",
		"topic":            "topic=t",
		"topic-channel":    "topic=t&channel=c",
		"ephemeral":        "topic=t%23ephemeral&channel=c%23ephemeral",
		"repeated":         "topic=a&topic=b",
		"empty-value":      "topic=&channel=",
		"bad-escape":       "topic=%zz",
		"semicolon":        "topic=t;channel=c",
		"plus":             "topic=a+b",
		"long-topic":       "topic=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"bad-channel":      "topic=t&channel=c!",
		"no-equals":        "topic",
		"unicode":          "topic=%C3%A9",
		"binary":           "topic=%00%ff",
		"many":             "a=1&b=2&c=3&topic=t&channel=c&defer=5&binary=true",
		"key-escape":       "%74opic=t",
		"only-ampersands":  "&&&",
		"channel-no-topic": "channel=c",
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzNewReqParams")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, q := range seeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%s)\n", strconv.Quote(q))
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
