package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mreiferson/go-options"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/nsqd"
)

// flagCase gives, for one flag row, a command line and a config-file value
// (a TOML literal) and the Options field value each must produce.
type flagCase struct {
	cli     []string
	cliWant interface{}
	cfg     string
	cfgWant interface{}
}

// flagCases covers every non-meta row of flagTable, including rows whose
// field is still tagged `later:`; those cases run as soon as the tag becomes
// `flag:`. Config values exercise D-CFG-04: integer durations are
// milliseconds, strings parse per type, lists take arrays or a comma string.
var flagCases = map[string]flagCase{
	"log-level":  {[]string{"--log-level=DEBUG"}, lg.DEBUG, `"warn"`, lg.WARN},
	"log-prefix": {[]string{"--log-prefix=[x] "}, "[x] ", `"[y] "`, "[y] "},
	"node-id":    {[]string{"-node-id", "5"}, int64(5), `"7"`, int64(7)},

	"https-address":               {[]string{"--https-address=127.0.0.1:5152"}, "127.0.0.1:5152", `"127.0.0.1:6152"`, "127.0.0.1:6152"},
	"http-address":                {[]string{"--http-address=127.0.0.1:5151"}, "127.0.0.1:5151", `"127.0.0.1:6151"`, "127.0.0.1:6151"},
	"tcp-address":                 {[]string{"--tcp-address", "127.0.0.1:5150"}, "127.0.0.1:5150", `"127.0.0.1:6150"`, "127.0.0.1:6150"},
	"auth-http-address":           {[]string{"--auth-http-address=a:1", "--auth-http-address=b:2,c:3"}, []string{"a:1", "b:2,c:3"}, `["a:1", "http://b/auth"]`, []string{"a:1", "http://b/auth"}},
	"auth-http-request-method":    {[]string{"--auth-http-request-method=post"}, "post", `"POST"`, "POST"},
	"broadcast-address":           {[]string{"--broadcast-address=h1"}, "h1", `"h2"`, "h2"},
	"broadcast-tcp-port":          {[]string{"--broadcast-tcp-port=5"}, 5, `6`, 6},
	"broadcast-http-port":         {[]string{"--broadcast-http-port=7"}, 7, `8`, 8},
	"lookupd-tcp-address":         {[]string{"--lookupd-tcp-address=a:1", "--lookupd-tcp-address=b:2"}, []string{"a:1", "b:2"}, `"c:3,d:4"`, []string{"c:3", "d:4"}},
	"http-client-connect-timeout": {[]string{"--http-client-connect-timeout=3s"}, 3 * time.Second, `4000`, 4 * time.Second},
	"http-client-request-timeout": {[]string{"--http-client-request-timeout=6s"}, 6 * time.Second, `"7s"`, 7 * time.Second},
	"topology-region":             {[]string{"--topology-region=r1"}, "r1", `"r2"`, "r2"},
	"topology-zone":               {[]string{"--topology-zone=z1"}, "z1", `"z2"`, "z2"},

	"data-path":          {[]string{"--data-path=/d1"}, "/d1", `"/d2"`, "/d2"},
	"mem-queue-size":     {[]string{"--mem-queue-size=0"}, int64(0), `123`, int64(123)},
	"max-bytes-per-file": {[]string{"--max-bytes-per-file=1024"}, int64(1024), `2048`, int64(2048)},
	"sync-every":         {[]string{"--sync-every=10"}, int64(10), `"20"`, int64(20)},
	"sync-timeout":       {[]string{"--sync-timeout=3s"}, 3 * time.Second, `500`, 500 * time.Millisecond},

	"queue-scan-worker-pool-max":  {[]string{"--queue-scan-worker-pool-max=8"}, 8, `2`, 2},
	"queue-scan-selection-count":  {[]string{"--queue-scan-selection-count=30"}, 30, `40`, 40},
	"queue-scan-interval":         {[]string{"--queue-scan-interval=50ms"}, 50 * time.Millisecond, `20`, 20 * time.Millisecond},
	"queue-scan-refresh-interval": {[]string{"--queue-scan-refresh-interval=1s"}, time.Second, `"2s"`, 2 * time.Second},

	"msg-timeout":     {[]string{"--msg-timeout=30s"}, 30 * time.Second, `5000`, 5 * time.Second},
	"max-msg-timeout": {[]string{"--max-msg-timeout=10m"}, 10 * time.Minute, `"20m"`, 20 * time.Minute},
	"max-msg-size":    {[]string{"--max-msg-size=2048"}, int64(2048), `4096`, int64(4096)},
	"max-req-timeout": {[]string{"--max-req-timeout=2h"}, 2 * time.Hour, `5000`, 5 * time.Second},
	"max-body-size":   {[]string{"--max-body-size=1000"}, int64(1000), `2000`, int64(2000)},

	"max-heartbeat-interval":    {[]string{"--max-heartbeat-interval=2m"}, 2 * time.Minute, `30000`, 30 * time.Second},
	"max-rdy-count":             {[]string{"--max-rdy-count=100"}, int64(100), `200`, int64(200)},
	"max-output-buffer-size":    {[]string{"--max-output-buffer-size=1000"}, int64(1000), `2000`, int64(2000)},
	"max-output-buffer-timeout": {[]string{"--max-output-buffer-timeout=1s"}, time.Second, `"2s"`, 2 * time.Second},
	"min-output-buffer-timeout": {[]string{"--min-output-buffer-timeout=10ms"}, 10 * time.Millisecond, `50`, 50 * time.Millisecond},
	"output-buffer-timeout":     {[]string{"--output-buffer-timeout=100ms"}, 100 * time.Millisecond, `"300ms"`, 300 * time.Millisecond},
	"max-channel-consumers":     {[]string{"--max-channel-consumers=3"}, 3, `4`, 4},
	"max-connections":           {[]string{"--max-connections=100"}, 100, `200`, 200},

	"statsd-address":           {[]string{"--statsd-address=127.0.0.1:8125"}, "127.0.0.1:8125", `"127.0.0.1:8126"`, "127.0.0.1:8126"},
	"statsd-interval":          {[]string{"--statsd-interval=10s"}, 10 * time.Second, `20000`, 20 * time.Second},
	"statsd-mem-stats":         {[]string{"--statsd-mem-stats=false"}, false, `0`, false},
	"statsd-prefix":            {[]string{"--statsd-prefix=x.%s"}, "x.%s", `"y.%s"`, "y.%s"},
	"statsd-udp-packet-size":   {[]string{"--statsd-udp-packet-size=1000"}, 1000, `2000`, 2000},
	"statsd-exclude-ephemeral": {[]string{"--statsd-exclude-ephemeral"}, true, `1`, true},

	// CLI values are sorted descending, config order is kept (D-CLI-46).
	"e2e-processing-latency-percentile":  {[]string{"--e2e-processing-latency-percentile=0.5,1.0", "--e2e-processing-latency-percentile=0.99"}, []float64{1.0, 0.99, 0.5}, `[0.5, 0.99]`, []float64{0.5, 0.99}},
	"e2e-processing-latency-window-time": {[]string{"--e2e-processing-latency-window-time=1m"}, time.Minute, `120000`, 2 * time.Minute},

	"tls-cert":               {[]string{"--tls-cert=/c"}, "/c", `"/c2"`, "/c2"},
	"tls-key":                {[]string{"--tls-key=/k"}, "/k", `"/k2"`, "/k2"},
	"tls-client-auth-policy": {[]string{"--tls-client-auth-policy=require"}, "require", `"require-verify"`, "require-verify"},
	"tls-root-ca-file":       {[]string{"--tls-root-ca-file=/ca"}, "/ca", `"/ca2"`, "/ca2"},
	"tls-required":           {[]string{"--tls-required"}, nsqd.TLSRequired, `"TCP-HTTPS"`, nsqd.TLSRequiredExceptHTTP},
	"tls-min-version":        {[]string{"--tls-min-version=TLS1.2"}, uint16(tls.VersionTLS12), `"tls1.3"`, uint16(tls.VersionTLS13)},

	"deflate":           {[]string{"--deflate=false"}, false, `0`, false},
	"max-deflate-level": {[]string{"--max-deflate-level=9"}, 9, `1`, 1},
	"snappy":            {[]string{"--snappy=0"}, false, `"false"`, false},

	"enable-experiment": {[]string{"--enable-experiment=a", "--enable-experiment=b"}, []string{"a", "b"}, `["topology-aware-consumption"]`, []string{"topology-aware-consumption"}},
}

var metaFlags = map[string]bool{"config": true, "version": true, "verbose": true, "worker-id": true}

// load runs loadOptions and fails the test on an error.
func load(t *testing.T, args ...string) *nsqd.Options {
	t.Helper()
	var stderr bytes.Buffer
	opts, err := loadOptions(args, &stderr)
	if err != nil {
		t.Fatalf("loadOptions(%q): %v\nstderr: %s", args, err, stderr.String())
	}
	return opts
}

// loadErr runs loadOptions expecting a *startError.
func loadErr(t *testing.T, args ...string) (*startError, string) {
	t.Helper()
	var stderr bytes.Buffer
	_, err := loadOptions(args, &stderr)
	var se *startError
	if !errors.As(err, &se) {
		t.Fatalf("loadOptions(%q) = %v, want a *startError", args, err)
	}
	return se, stderr.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nsqd.cfg")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fieldValue reads the Options field behind a flag name.
func fieldValue(t *testing.T, opts *nsqd.Options, name string) interface{} {
	t.Helper()
	f, ok := optionFields(opts, &extOptions{})[name]
	if !ok {
		t.Fatalf("no option field for flag %q", name)
	}
	if f.target.Type() == reflect.TypeOf(extOptions{}) {
		// extension values are copied onto the Options field of the same name
		return reflect.ValueOf(opts).Elem().FieldByName(f.field.Name).Interface()
	}
	return reflect.ValueOf(opts).Elem().FieldByIndex(f.field.Index).Interface()
}

// sameValue is DeepEqual except that nil and empty lists are equal: list
// flags resolve to [] where NewOptions may leave nil.
func sameValue(a, b interface{}) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Kind() == reflect.Slice && vb.Kind() == reflect.Slice && va.Type() == vb.Type() && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestFlagTableMatchesOptions: every flag row has an option field and every
// tagged field has a row, so go-options' Resolve can never panic and a
// `later:` field becomes a flag just by retagging it.
func TestFlagTableMatchesOptions(t *testing.T) {
	fields := optionFields(nsqd.NewOptions(), &extOptions{})
	seen := make(map[string]bool)
	for _, r := range flagTable {
		if seen[r.name] {
			t.Errorf("duplicate row %q", r.name)
		}
		seen[r.name] = true
		if r.usage == "" {
			t.Errorf("row %q has no usage", r.name)
		}
		if r.meta {
			if !metaFlags[r.name] {
				t.Errorf("unexpected meta row %q", r.name)
			}
			continue
		}
		if _, ok := fields[r.name]; !ok {
			t.Errorf("row %q has no option field", r.name)
		}
		if _, ok := flagCases[r.name]; !ok {
			t.Errorf("row %q has no test case in flagCases", r.name)
		}
	}
	for name, f := range fields {
		if !seen[name] {
			t.Errorf("field %s (tag %q) has no flag row", f.field.Name, name)
		}
	}
	for name := range flagCases {
		if !seen[name] {
			t.Errorf("flagCases has %q, which is no row", name)
		}
	}
	if _, _, err := newFlagSet(nsqd.NewOptions(), &extOptions{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
}

// TestEveryFlag: D-CLI-*, D-CFG-01, D-CFG-03, D-CFG-04 for each flag: the
// default when absent, the CLI value, the config value, and CLI beating config.
func TestEveryFlag(t *testing.T) {
	defaults := nsqd.NewOptions()
	fields := optionFields(defaults, &extOptions{})
	for _, r := range flagTable {
		if r.meta {
			continue
		}
		tc, f := flagCases[r.name], fields[r.name]
		t.Run(r.name, func(t *testing.T) {
			cfgPath := writeConfig(t, f.cfgKey+" = "+tc.cfg+"\n")
			if !f.active {
				// not a flag yet: rejected on the CLI, its key ignored in config
				if se, _ := loadErr(t, tc.cli...); se.code != 2 {
					t.Errorf("inactive flag: exit %d, want 2", se.code)
				}
				opts := load(t, "--config="+cfgPath)
				if got, want := reflect.ValueOf(opts).Elem().FieldByIndex(f.field.Index).Interface(),
					reflect.ValueOf(defaults).Elem().FieldByIndex(f.field.Index).Interface(); !sameValue(got, want) {
					t.Errorf("inactive key %s changed the field: %#v, want %#v", f.cfgKey, got, want)
				}
				return
			}
			want := fieldValue(t, defaults, r.name)
			if got := fieldValue(t, load(t), r.name); !sameValue(got, want) {
				t.Errorf("default: got %#v, want %#v", got, want)
			}
			if sameValue(tc.cliWant, want) || sameValue(tc.cfgWant, want) {
				t.Fatalf("bad case: CLI and config values must differ from the default")
			}
			if got := fieldValue(t, load(t, tc.cli...), r.name); !reflect.DeepEqual(got, tc.cliWant) {
				t.Errorf("CLI %q: got %#v, want %#v", tc.cli, got, tc.cliWant)
			}
			if got := fieldValue(t, load(t, "--config="+cfgPath), r.name); !reflect.DeepEqual(got, tc.cfgWant) {
				t.Errorf("config %s = %s: got %#v, want %#v", f.cfgKey, tc.cfg, got, tc.cfgWant)
			}
			if reflect.DeepEqual(tc.cliWant, tc.cfgWant) {
				return // a bool has no third value to show precedence with
			}
			args := append([]string{"--config=" + cfgPath}, tc.cli...)
			if got := fieldValue(t, load(t, args...), r.name); !reflect.DeepEqual(got, tc.cliWant) {
				t.Errorf("CLI and config: got %#v, want the CLI value %#v", got, tc.cliWant)
			}
		})
	}
}

// TestListDefaultsNotNil: list options default to [] (never null), as the
// reference reports them over HTTP.
func TestListDefaultsNotNil(t *testing.T) {
	a := newStringArray(nil)
	if v := a.Get().([]string); v == nil {
		t.Error("string list default is nil")
	}
	if v := newFloatArray(nil).Get().([]float64); v == nil {
		t.Error("float list default is nil")
	}
	if v, err := coerce([]interface{}{}, reflect.TypeOf([]string(nil))); err != nil || v.([]string) == nil {
		t.Errorf("empty TOML array: %#v, %v", v, err)
	}
}

// TestMetaFlags: --verbose and --worker-id are accepted and do nothing
// (D-CLI-05, D-CLI-07); --version is reported after parsing (D-CLI-01);
// their names in a config file are ignored (D-CFG-03).
func TestMetaFlags(t *testing.T) {
	want := load(t)
	got := load(t, "--verbose", "-worker-id")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("--verbose/--worker-id changed options")
	}
	if _, err := loadOptions([]string{"--version"}, &bytes.Buffer{}); !errors.Is(err, errVersion) {
		t.Errorf("--version: %v", err)
	}
	// a bad flag after --version still fails parsing first
	if se, _ := loadErr(t, "--version", "--bogus"); se.code != 2 {
		t.Errorf("--version --bogus: exit %d, want 2", se.code)
	}
	if se, _ := loadErr(t, "--worker-id=5"); se.code != 2 {
		t.Errorf("--worker-id=5: exit %d, want 2", se.code)
	}
	cfg := writeConfig(t, "config = \"/nonexistent\"\nversion = true\nverbose = true\nworker_id = 5\nbogus_key = 7\nqueue_scan = 1\n")
	if got := load(t, "--config="+cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("ignored config keys changed options")
	}
}

// TestNoEnvironment: D-CFG-02, nothing is read from the environment.
func TestNoEnvironment(t *testing.T) {
	want := load(t)
	for _, k := range []string{"NSQD_TCP_ADDRESS", "NSQ_TCP_ADDRESS", "TCP_ADDRESS", "NSQD_MEM_QUEUE_SIZE"} {
		t.Setenv(k, "127.0.0.1:1")
	}
	if got := load(t); !reflect.DeepEqual(got, want) {
		t.Errorf("environment changed options")
	}
}

// TestHelp: -h and --help print the usage and exit 0.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		se, stderr := loadErr(t, arg)
		if se.code != 0 || !strings.HasPrefix(stderr, "Usage of nsqd:\n") {
			t.Errorf("%s: exit %d, stderr %q", arg, se.code, stderr)
		}
	}
}

// TestUsageDefaults: defaults print as NSQ prints them.
func TestUsageDefaults(t *testing.T) {
	_, stderr := loadErr(t, "-h")
	for _, want := range []string{
		"  -log-level value\n    \tset log verbosity: debug, info, warn, error, or fatal (default INFO)\n",
		"  -msg-timeout duration\n    \tdefault duration to wait before auto-requeing a message (default 1m0s)\n",
		"  -log-prefix string\n    \tlog message prefix (default \"[nsqd] \")\n",
		"  -max-req-timeout duration\n    \tmaximum requeuing timeout for a message (default 1h0m0s)\n",
		"  -worker-id\n    \t[deprecated] use --node-id\n",
		"  -tcp-address string\n    \t<addr>:<port> to listen on for TCP clients (default \"0.0.0.0:4150\")\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	// the custom values of the later rows print NSQ's defaults too
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	fs.Var(newTLSMinVersionValue(uint16(tls.VersionTLS10)), "tls-min-version", "u")
	fs.Var(newTLSRequiredValue(0), "tls-required", "u")
	fs.Var(newStringArray([]string{}), "lookupd-tcp-address", "u")
	fs.Var(newFloatArray(nil), "e2e-processing-latency-percentile", "u")
	fs.PrintDefaults()
	want := "  -e2e-processing-latency-percentile value\n    \tu\n" +
		"  -lookupd-tcp-address value\n    \tu\n" +
		"  -tls-min-version value\n    \tu (default 769)\n" +
		"  -tls-required\n    \tu\n"
	if buf.String() != want {
		t.Errorf("PrintDefaults:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestBadCLIValues: a bad value is exit 2 with the flag package's message
// (D-CLI-03, D-CLI-07, D-CLI-28).
func TestBadCLIValues(t *testing.T) {
	fields := optionFields(nsqd.NewOptions(), &extOptions{})
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--log-level=loud"}, `invalid value "loud" for flag -log-level: invalid log level 'loud' (debug, info, warn, error, fatal)`},
		{[]string{"--worker-id=5"}, `invalid boolean value "5" for -worker-id: parse error`},
		{[]string{"--bogus"}, `flag provided but not defined: -bogus`},
		{[]string{"--mem-queue-size=abc"}, `invalid value "abc" for flag -mem-queue-size: parse error`},
		// plain integers are no durations on the command line
		{[]string{"--msg-timeout=60"}, `invalid value "60" for flag -msg-timeout: parse error`},
		{[]string{"--node-id"}, `flag needs an argument: -node-id`},
		// these run once their flag is active
		{[]string{"--tls-required=maybe"}, `invalid boolean value "maybe" for -tls-required: strconv.ParseBool: parsing "maybe": invalid syntax`},
		{[]string{"--tls-min-version=ssl3.0"}, `invalid value "ssl3.0" for flag -tls-min-version: unknown tlsVersionOption "ssl3.0"`},
		{[]string{"--deflate=2"}, `invalid boolean value "2" for -deflate: parse error`},
	} {
		name := strings.TrimLeft(strings.SplitN(tc.args[0], "=", 2)[0], "-")
		if f, ok := fields[name]; ok && !f.active {
			continue
		}
		se, stderr := loadErr(t, tc.args...)
		if se.code != 2 || !strings.HasPrefix(stderr, tc.msg+"\nUsage of nsqd:\n") {
			t.Errorf("%q: exit %d, stderr %q", tc.args, se.code, stderr)
		}
	}
	// a percentile that is no float: exit 1 with the reference's log.Fatal
	// text, even when a bad flag follows (D-CLI-46)
	if fields["e2e-processing-latency-percentile"].active {
		se, _ := loadErr(t, "--e2e-processing-latency-percentile=1.0,abc", "--bogus")
		if se.code != 1 || se.style != styleStd || se.msg != "Could not parse: abc" {
			t.Errorf("bad percentile: %+v", se)
		}
	}
}

// TestBadConfigValues: special keys fail with "failed parsing <key> <v>"
// (D-CFG-08), others with go-options' coercion message (D-CFG-04); both exit 1.
func TestBadConfigValues(t *testing.T) {
	for _, tc := range []struct {
		body  string
		args  []string
		style int
		msg   string
	}{
		{`log_level = "nope"`, nil, styleFatal, "failed parsing log_level nope"},
		// validated even when the flag overrides it, like the reference
		{`log_level = "nope"`, []string{"--log-level=info"}, styleFatal, "failed parsing log_level nope"},
		{`mem_queue_size = "abc"`, nil, styleStd,
			`ERROR: Resolve failed to coerce value abc (10000) for field MemQueueSize - strconv.ParseInt: parsing "abc": invalid syntax`},
		{`msg_timeout = true`, nil, styleStd,
			"ERROR: Resolve failed to coerce value true (1m0s) for field MsgTimeout - invalid time.Duration value type bool"},
		{`msg_timeout = "60"`, nil, styleStd,
			`ERROR: Resolve failed to coerce value 60 (1m0s) for field MsgTimeout - time: missing unit in duration "60"`},
		{`max_channel_consumers = 1.5`, nil, styleStd,
			"ERROR: Resolve failed to coerce value 1.5 (0) for field MaxChannelConsumers - invalid int64 value type float64"},
		{`queue_scan_interval = 0`, nil, styleFatal, "failed to instantiate nsqd - --queue-scan-interval must be > 0"},
		{`queue_scan_refresh_interval = "-1s"`, nil, styleFatal, "failed to instantiate nsqd - --queue-scan-refresh-interval must be > 0"},
		{`mem_queue_size = [`, nil, styleFatal, "failed to load config file "},
		// D-CFG-06/07 (active since the TLS issue)
		{`tls_required = "nope"`, nil, styleFatal, "failed parsing tls_required nope"},
		{`tls_min_version = "ssl3.0"`, nil, styleFatal, "failed parsing tls_min_version ssl3.0"},
	} {
		args := append([]string{"--config=" + writeConfig(t, tc.body+"\n")}, tc.args...)
		se, _ := loadErr(t, args...)
		if se.code != 1 || se.style != tc.style || !strings.HasPrefix(se.msg, tc.msg) {
			t.Errorf("%s: exit %d style %d msg %q, want exit 1 style %d %q", tc.body, se.code, se.style, se.msg, tc.style, tc.msg)
		}
	}
	// A bad config value does not matter when the CLI overrides it (D-CFG-01).
	opts := load(t, "--config="+writeConfig(t, "mem_queue_size = \"abc\"\n"), "--mem-queue-size=5")
	if opts.MemQueueSize != 5 {
		t.Errorf("MemQueueSize = %d", opts.MemQueueSize)
	}
}

// TestCoerce covers conversions only later (`later:`-tagged) options use yet.
func TestCoerce(t *testing.T) {
	typ := func(v interface{}) reflect.Type { return reflect.TypeOf(v) }
	for _, tc := range []struct {
		in   interface{}
		t    reflect.Type
		want interface{}
		err  bool
	}{
		// integers for booleans are read naturally (go-options inverts them)
		{int64(0), typ(true), false, false},
		{int64(1), typ(true), true, false},
		{int64(-3), typ(true), true, false},
		{"TRUE", typ(true), true, false},
		{"yes", typ(true), nil, true},
		{1.0, typ(true), nil, true},
		{int64(70000), typ(uint16(0)), nil, true},
		{int64(-1), typ(uint16(0)), nil, true},
		{"771", typ(uint16(0)), uint16(771), false},
		{int64(5), typ(""), "5", false},
		{[]interface{}{"a", int64(1)}, typ([]string{}), nil, true},
		{int64(5), typ([]string{}), nil, true},
		{[]interface{}{int64(1), 0.5}, typ([]float64{}), []float64{1, 0.5}, false},
		{"1.0, 0.99", typ([]float64{}), []float64{1, 0.99}, false},
		{[]interface{}{"x"}, typ([]float64{}), nil, true},
		{map[string]interface{}{}, typ(int64(0)), nil, true},
	} {
		got, err := coerce(tc.in, tc.t)
		if (err != nil) != tc.err || (!tc.err && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("coerce(%#v, %s) = %#v, %v", tc.in, tc.t, got, err)
		}
	}
}

// TestConfigBoolIntegers: Q-07 / D-CFG-05 through the real pipeline
// (normalizeConfig then go-options), on a struct of its own because no bool
// option is a flag yet.
func TestConfigBoolIntegers(t *testing.T) {
	type boolOpts struct {
		On  bool `flag:"on"`
		Off bool `flag:"off"`
		CLI bool `flag:"cli"`
	}
	resolve := func(normalize bool) boolOpts {
		o := boolOpts{On: true}
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.Bool("on", o.On, "")
		fs.Bool("off", o.Off, "")
		fs.Bool("cli", o.CLI, "")
		if err := fs.Parse([]string{"--cli=false"}); err != nil {
			t.Fatal(err)
		}
		// "cli" is given on the command line: its bad config value is never used
		cfg := map[string]interface{}{"on": int64(0), "off": int64(7), "cli": "bogus"}
		if normalize {
			if err := normalizeConfig(cfg, fs, optionFields(&o)); err != nil {
				t.Fatal(err)
			}
		}
		options.Resolve(&o, fs, cfg)
		return o
	}
	if got := resolve(true); got != (boolOpts{On: false, Off: true}) {
		t.Errorf("normalized: %+v", got)
	}
	// the quirk being fixed: plain go-options reads integers inverted
	if got := resolve(false); got != (boolOpts{On: true, Off: false}) {
		t.Errorf("go-options no longer inverts integer booleans (%+v): drop the comment in coerce", got)
	}
}

// TestSpecialValues: the custom flag values of --tls-required,
// --tls-min-version and --e2e-processing-latency-percentile and their config
// forms (D-CLI-46, D-CLI-52, D-CLI-53, D-CFG-06, D-CFG-07).
func TestSpecialValues(t *testing.T) {
	var tr tlsRequiredValue
	for in, want := range map[string]int{"true": 2, "1": 2, "T": 2, "false": 0, "0": 0, "tcp-https": 1, "TCP-HTTPS": 1} {
		if err := tr.Set(in); err != nil || int(tr) != want {
			t.Errorf("tls-required %q = %d, %v", in, tr, err)
		}
	}
	if err := tr.Set("maybe"); err == nil || err.Error() != `strconv.ParseBool: parsing "maybe": invalid syntax` {
		t.Errorf("tls-required maybe: %v", err)
	}
	if v, err := cfgTLSRequired(true); err != nil || v != 2 {
		t.Errorf("tls_required = true: %v, %v", v, err)
	}
	if _, err := cfgTLSRequired("nope"); err == nil {
		t.Error("tls_required = nope accepted")
	}

	tv := tlsMinVersionValue(tls.VersionTLS10)
	if err := tv.Set(""); err != nil || tv != tls.VersionTLS10 {
		t.Errorf("empty tls-min-version: %d, %v", tv, err)
	}
	if err := tv.Set("ssl3.0"); err == nil || err.Error() != `unknown tlsVersionOption "ssl3.0"` {
		t.Errorf("ssl3.0: %v", err)
	}
	if v, err := cfgTLSMinVersion(""); err != nil || v != nil {
		t.Errorf(`tls_min_version = "": %v, %v (want key dropped)`, v, err)
	}
	if v, err := cfgTLSMinVersion("tls1.1"); err != nil || v != uint16(tls.VersionTLS11) {
		t.Errorf("tls_min_version = tls1.1: %v, %v", v, err)
	}

	fa := newFloatArray(nil)
	for _, s := range []string{"0.5", "1.0,0.99"} {
		if err := fa.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := fa.Get().([]float64); !reflect.DeepEqual(got, []float64{1, 0.99, 0.5}) || fa.String() != "1,0.99,0.5" {
		t.Errorf("percentiles %v %q", got, fa.String())
	}
	// NSQ exits 1 with "Could not parse: <v>" rather than the usual exit 2;
	// loadOptions reports that when the flag is registered.
	if err := fa.Set("0.9,abc"); err != nil || fa.bad != "abc" {
		t.Errorf("bad percentile: %v, bad=%q", err, fa.bad)
	}

	if v, err := cfgLogLevel("ERROR"); err != nil || v != lg.ERROR {
		t.Errorf("log_level = ERROR: %v %v", v, err)
	}
}

// TestExampleConfig: contrib/nsqd.cfg.example loads, gives the defaults, and
// lists every flag's key, commented out only for flags that are not active
// yet (D-CFG-09).
func TestExampleConfig(t *testing.T) {
	path := filepath.Join("..", "..", "contrib", "nsqd.cfg.example")
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts := load(t, "--config="+path)
	defaults := nsqd.NewOptions()
	fields := optionFields(defaults, &extOptions{})
	for _, r := range flagTable {
		if r.meta {
			continue
		}
		f := fields[r.name]
		hostSpecific := r.name == "node-id" || r.name == "data-path" || r.name == "broadcast-address"
		if f.active && !hostSpecific {
			if got, want := fieldValue(t, opts, r.name), fieldValue(t, defaults, r.name); !sameValue(got, want) {
				t.Errorf("%s = %#v in the example, default is %#v", f.cfgKey, got, want)
			}
		}
		// id, data_path and broadcast_address have host-specific defaults:
		// documented commented out
		re := `(?m)^` + regexp.QuoteMeta(f.cfgKey) + ` = `
		if !f.active || hostSpecific {
			re = `(?m)^# ` + regexp.QuoteMeta(f.cfgKey) + ` = `
		}
		if !regexp.MustCompile(re).Match(body) {
			t.Errorf("example lacks a line matching %q", re)
		}
	}
}
