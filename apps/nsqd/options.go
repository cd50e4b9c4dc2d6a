package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/mreiferson/go-options"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/nsqd"
)

// flagRow describes one command-line flag (spec section 1, D-CLI-*).
//
// A row whose name is the `flag:` tag of an nsqd.Options field (or of an
// extOptions field) is registered and resolved into that field; a row whose
// field still carries only a `later:` tag is not registered, so `nsqd --help`
// never lists a flag that does nothing yet. Turning `later:` into `flag:` in
// nsqd/options.go is all a feature issue has to do to expose its flags.
type flagRow struct {
	name  string
	usage string
	// meta rows (config, version, deprecated flags) have no Options field;
	// def is their default.
	meta bool
	def  interface{}
	// value builds a custom flag.Value holding def (the NewOptions default).
	// nil: a standard flag is derived from the default's Go type.
	value func(def interface{}) flag.Value
	// cfg converts the option's config-file value into the field's type and
	// fails with "failed parsing <key> <v>" (D-CFG-06..08). Returning nil drops
	// the key (the default is kept). nil: generic coercion (D-CFG-04).
	cfg func(v interface{}) (interface{}, error)
}

// flagTable lists every nsqd flag with NSQ v1.3.0's name and help text. The
// default shown by --help is the field's value in nsqd.NewOptions().
var flagTable = []flagRow{
	// basic options
	{name: "version", meta: true, def: false, usage: "print version string"},
	{name: "config", meta: true, def: "", usage: "path to config file"},
	{name: "log-level", usage: "set log verbosity: debug, info, warn, error, or fatal",
		value: newLogLevelValue, cfg: cfgLogLevel},
	{name: "log-prefix", usage: "log message prefix"},
	{name: "verbose", meta: true, def: false, usage: "[deprecated] has no effect, use --log-level"},
	{name: "node-id", usage: "unique part for message IDs, (int) in range [0,1024) (default is hash of hostname)"},
	{name: "worker-id", meta: true, def: false, usage: "[deprecated] use --node-id"},

	{name: "https-address", usage: "<addr>:<port> to listen on for HTTPS clients"},
	{name: "http-address", usage: "<addr>:<port> to listen on for HTTP clients"},
	{name: "tcp-address", usage: "<addr>:<port> to listen on for TCP clients"},
	{name: "auth-http-address", usage: "<addr>:<port> or a full url to query auth server (may be given multiple times)"},
	{name: "auth-http-request-method", usage: "HTTP method to use for auth server requests ('get' or 'post')"},
	{name: "broadcast-address", usage: "address that will be registered with lookupd (defaults to the OS hostname)"},
	{name: "broadcast-tcp-port", usage: "TCP port that will be registered with lookupd (defaults to the TCP port that this nsqd is listening on)"},
	{name: "broadcast-http-port", usage: "HTTP port that will be registered with lookupd (defaults to the HTTP port that this nsqd is listening on)"},
	{name: "lookupd-tcp-address", usage: "lookupd TCP address (may be given multiple times)"},
	{name: "http-client-connect-timeout", usage: "timeout for HTTP connect"},
	{name: "http-client-request-timeout", usage: "timeout for HTTP request"},
	{name: "topology-region", usage: "region of this nsqd, for topology-aware consumption (experiment)"},
	{name: "topology-zone", usage: "zone of this nsqd, for topology-aware consumption (experiment)"},

	// diskqueue options
	{name: "data-path", usage: "path to store disk-backed messages"},
	{name: "mem-queue-size", usage: "number of messages to keep in memory (per topic/channel)"},
	{name: "max-bytes-per-file", usage: "number of bytes per diskqueue file before rolling"},
	{name: "sync-every", usage: "number of messages per diskqueue fsync"},
	{name: "sync-timeout", usage: "duration of time per diskqueue fsync"},

	{name: "queue-scan-worker-pool-max", usage: "max concurrency for checking in-flight and deferred message timeouts"},
	{name: "queue-scan-selection-count", usage: "number of channels to check per cycle (every 100ms) for in-flight and deferred timeouts"},
	// our extensions: NSQ hard-codes these (D-CLI-58)
	{name: "queue-scan-interval", usage: "longest the timeout scanner sleeps; it wakes at the earliest in-flight or deferred deadline anyway (extension)"},
	{name: "queue-scan-refresh-interval", usage: "duration between refreshes of the set of channels to scan (extension)"},

	// msg and command options
	{name: "msg-timeout", usage: "default duration to wait before auto-requeing a message"},
	{name: "max-msg-timeout", usage: "maximum duration before a message will timeout"},
	{name: "max-msg-size", usage: "maximum size of a single message in bytes"},
	{name: "max-req-timeout", usage: "maximum requeuing timeout for a message"},
	{name: "max-body-size", usage: "maximum size of a single command body"},

	// client overridable configuration options
	{name: "max-heartbeat-interval", usage: "maximum client configurable duration of time between client heartbeats"},
	{name: "max-rdy-count", usage: "maximum RDY count for a client"},
	{name: "max-output-buffer-size", usage: "maximum client configurable size (in bytes) for a client output buffer"},
	{name: "max-output-buffer-timeout", usage: "maximum client configurable duration of time between flushing to a client"},
	{name: "min-output-buffer-timeout", usage: "minimum client configurable duration of time between flushing to a client"},
	{name: "output-buffer-timeout", usage: "default duration of time between flushing data to clients"},
	{name: "max-channel-consumers", usage: "maximum channel consumer connection count per nsqd instance (default 0, i.e., unlimited)"},
	// our extension: NSQ has no connection cap
	{name: "max-connections", usage: "maximum number of concurrent TCP client connections; more are refused with E_TOO_MANY_CONNECTIONS (default 0, i.e., unlimited)"},

	// statsd integration
	{name: "statsd-address", usage: "UDP <addr>:<port> of a statsd daemon for pushing stats"},
	{name: "statsd-interval", usage: "duration between pushing to statsd"},
	{name: "statsd-mem-stats", usage: "toggle sending memory and GC stats to statsd"},
	{name: "statsd-prefix", usage: "prefix used for keys sent to statsd (%s for host replacement)"},
	{name: "statsd-udp-packet-size", usage: "the size in bytes of statsd UDP packets"},
	{name: "statsd-exclude-ephemeral", usage: "Skip ephemeral topics and channels when sending stats to statsd"},

	// end to end latency percentiles
	{name: "e2e-processing-latency-percentile", usage: "message processing time percentiles (as float (0, 1.0]) to track (can be specified multiple times or comma separated '1.0,0.99,0.95', default none)"},
	{name: "e2e-processing-latency-window-time", usage: "calculate end to end latency quantiles for this duration of time (ie: 60s would only show quantile calculations from the past 60 seconds)"},

	// TLS
	{name: "tls-cert", usage: "path to certificate file"},
	{name: "tls-key", usage: "path to key file"},
	{name: "tls-client-auth-policy", usage: "client certificate auth policy ('require' or 'require-verify')"},
	{name: "tls-root-ca-file", usage: "path to certificate authority file"},
	{name: "tls-required", usage: "require TLS for client connections (true, false, tcp-https)",
		value: newTLSRequiredValue, cfg: cfgTLSRequired},
	{name: "tls-min-version", usage: "minimum SSL/TLS version acceptable ('ssl3.0', 'tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3')",
		value: newTLSMinVersionValue, cfg: cfgTLSMinVersion},

	// compression
	{name: "deflate", usage: "enable deflate feature negotiation (client compression)"},
	{name: "max-deflate-level", usage: "max deflate compression level a client can negotiate (> values == > nsqd CPU usage)"},
	{name: "snappy", usage: "enable snappy feature negotiation (client compression)"},

	{name: "enable-experiment", usage: "enable experimental feature (may be given multiple times) (valid options: 'topology-aware-consumption')"},
}

// extOptions carries our flags for Options fields that NSQ does not expose
// (D-CLI-58). Resolving them through their own tagged struct gives them the
// same precedence and config semantics as every other option without
// changing which Options fields are flags; the values are copied onto the
// Options fields of the same name.
type extOptions struct {
	QueueScanInterval        time.Duration `flag:"queue-scan-interval"`
	QueueScanRefreshInterval time.Duration `flag:"queue-scan-refresh-interval"`
}

// optField is an option field found through its struct tags.
type optField struct {
	target reflect.Value // the struct (nsqd.Options or extOptions) holding it
	field  reflect.StructField
	active bool   // tagged `flag:` (registered) rather than `later:`
	cfgKey string // TOML key (D-CFG-03)
}

func (f optField) value() reflect.Value { return f.target.FieldByIndex(f.field.Index) }

// optionFields maps flag names to fields of the given structs (pointers).
func optionFields(structs ...interface{}) map[string]optField {
	m := make(map[string]optField)
	for _, s := range structs {
		v := reflect.ValueOf(s).Elem()
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			name, active := sf.Tag.Get("flag"), true
			if name == "" {
				name, active = sf.Tag.Get("later"), false
			}
			if name == "" {
				continue
			}
			key := sf.Tag.Get("cfg")
			if key == "" {
				key = strings.ReplaceAll(name, "-", "_")
			}
			m[name] = optField{target: v, field: sf, active: active, cfgKey: key}
		}
	}
	return m
}

// startError is a failure before nsqd runs; run() prints it and exits.
type startError struct {
	code  int
	style int // how msg is printed, see below
	msg   string
}

const (
	styleNone  = iota // the flag package already printed message and usage
	styleFatal        // "[nsqd] <ts> FATAL: <msg>", like NSQ's own fatal lines
	styleStd          // "<ts> <msg>", Go's standard logger (go-options, NSQ's log.Fatal)
)

func (e *startError) Error() string { return e.msg }

// errVersion asks run() to print the version (D-CLI-01).
var errVersion = errors.New("version requested")

func fatalErr(format string, args ...interface{}) error {
	return &startError{code: 1, style: styleFatal, msg: fmt.Sprintf(format, args...)}
}

// newFlagSet registers every active row; flag defaults come from the current
// values of opts and ext, which go-options also uses as resolved defaults.
func newFlagSet(opts *nsqd.Options, ext *extOptions, output io.Writer) (*flag.FlagSet, map[string]optField, error) {
	fields := optionFields(opts, ext)
	fs := flag.NewFlagSet("nsqd", flag.ContinueOnError)
	fs.SetOutput(output)
	rows := make(map[string]bool)
	for _, r := range flagTable {
		rows[r.name] = true
		def := r.def
		if !r.meta {
			f, ok := fields[r.name]
			if !ok {
				return nil, nil, fmt.Errorf("flag row %q has no option field", r.name)
			}
			if !f.active {
				continue
			}
			def = f.value().Interface()
		}
		if r.value != nil {
			fs.Var(r.value(def), r.name, r.usage)
			continue
		}
		switch d := def.(type) {
		case string:
			fs.String(r.name, d, r.usage)
		case bool:
			fs.Bool(r.name, d, r.usage)
		case int:
			fs.Int(r.name, d, r.usage)
		case int64:
			fs.Int64(r.name, d, r.usage)
		case time.Duration:
			fs.Duration(r.name, d, r.usage)
		case float64:
			fs.Float64(r.name, d, r.usage)
		case []string:
			fs.Var(newStringArray(d), r.name, r.usage)
		case []float64:
			fs.Var(newFloatArray(d), r.name, r.usage)
		default:
			return nil, nil, fmt.Errorf("flag %q: no flag type for %T", r.name, def)
		}
	}
	// go-options panics on a tagged field without a flag: make it an error.
	for name, f := range fields {
		if f.active && !rows[name] {
			return nil, nil, fmt.Errorf("option field %s has no flag row %q", f.field.Name, name)
		}
	}
	return fs, fields, nil
}

// loadOptions resolves the command line and the --config file into Options
// (CLI > config > default, D-CFG-01) without starting anything. Errors are
// *startError (or errVersion) and say how the process must end.
func loadOptions(args []string, stderr io.Writer) (*nsqd.Options, error) {
	opts := nsqd.NewOptions()
	ext := extOptions{
		QueueScanInterval:        opts.QueueScanInterval,
		QueueScanRefreshInterval: opts.QueueScanRefreshInterval,
	}
	fs, fields, err := newFlagSet(opts, &ext, stderr)
	if err != nil {
		return nil, fatalErr("%s", err)
	}
	perr := fs.Parse(args)
	// NSQ log.Fatal's on a bad percentile while parsing (D-CLI-46), so that
	// failure wins over anything reported after it.
	var ferr error
	fs.VisitAll(func(f *flag.Flag) {
		if a, ok := f.Value.(*floatArray); ok && a.bad != "" && ferr == nil {
			ferr = &startError{code: 1, style: styleStd, msg: "Could not parse: " + a.bad}
		}
	})
	switch {
	case ferr != nil:
		return nil, ferr
	case errors.Is(perr, flag.ErrHelp):
		return nil, &startError{code: 0, style: styleNone, msg: "help requested"}
	case perr != nil:
		return nil, &startError{code: 2, style: styleNone, msg: perr.Error()}
	}
	if fs.Lookup("version").Value.(flag.Getter).Get().(bool) {
		return nil, errVersion
	}

	cfg := make(map[string]interface{})
	if path := fs.Lookup("config").Value.String(); path != "" {
		if _, err := toml.DecodeFile(path, &cfg); err != nil {
			return nil, fatalErr("failed to load config file %s - %s", path, err)
		}
	}
	if err := normalizeConfig(cfg, fs, fields); err != nil {
		return nil, err
	}
	options.Resolve(opts, fs, cfg)
	options.Resolve(&ext, fs, cfg)
	opts.QueueScanInterval = ext.QueueScanInterval
	opts.QueueScanRefreshInterval = ext.QueueScanRefreshInterval
	if err := validateExt(opts); err != nil {
		return nil, fatalErr("failed to instantiate nsqd - %s", err)
	}
	return opts, nil
}

// validateExt checks our extension options, which NSQ never had to: a
// non-positive interval would panic the scan loop's ticker.
func validateExt(o *nsqd.Options) error {
	switch {
	case o.QueueScanInterval <= 0:
		return errors.New("--queue-scan-interval must be > 0")
	case o.QueueScanRefreshInterval <= 0:
		return errors.New("--queue-scan-refresh-interval must be > 0")
	}
	return nil
}

// normalizeConfig turns every config value that go-options will use into the
// exact type of its field, so Resolve never coerces: go-options would invert
// integer booleans, panic on non-string list members and log.Fatal on
// other failures, none of which a caller could handle.
func normalizeConfig(cfg map[string]interface{}, fs *flag.FlagSet, fields map[string]optField) error {
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	// Special keys are validated even when the flag overrides them, as NSQ does.
	for _, r := range flagTable {
		f, ok := fields[r.name]
		if r.cfg == nil || !ok || !f.active {
			continue
		}
		v, ok := cfg[f.cfgKey]
		if !ok {
			continue
		}
		nv, err := r.cfg(v)
		if err != nil {
			return fatalErr("failed parsing %s %+v", f.cfgKey, v)
		}
		if nv == nil {
			delete(cfg, f.cfgKey)
		} else {
			cfg[f.cfgKey] = nv
		}
	}

	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // report the same key first on every run
	for _, name := range names {
		f := fields[name]
		v, ok := cfg[f.cfgKey]
		if !f.active || !ok || given[name] {
			continue
		}
		nv, err := coerce(v, f.field.Type)
		if err != nil {
			// go-options' wording (D-CFG-04); the field still holds its default.
			return &startError{code: 1, style: styleStd, msg: fmt.Sprintf(
				"ERROR: Resolve failed to coerce value %v (%+v) for field %s - %s",
				v, f.value().Interface(), f.field.Name, err)}
		}
		cfg[f.cfgKey] = nv
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// coerce converts a TOML-decoded value (string, int64, float64, bool,
// []interface{}, ...) to type t following go-options' rules (D-CFG-04):
// strings parse per type, integer durations are milliseconds. It differs only
// where go-options misbehaves: integer booleans read naturally, list
// members of the wrong type and out-of-range integers are errors instead of
// panics or wrap-around, and integers are accepted for floats.
func coerce(v interface{}, t reflect.Type) (interface{}, error) {
	if reflect.TypeOf(v) == t {
		return v, nil
	}
	out := reflect.New(t).Elem()
	switch {
	case t == durationType:
		switch x := v.(type) {
		case string:
			d, err := time.ParseDuration(x)
			if err != nil {
				return nil, err
			}
			return d, nil
		case int64:
			return time.Duration(x) * time.Millisecond, nil
		}
		return nil, fmt.Errorf("invalid time.Duration value type %T", v)
	case t.Kind() == reflect.Bool:
		switch x := v.(type) {
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return nil, err
			}
			out.SetBool(b)
		case int64:
			out.SetBool(x != 0)
		default:
			return nil, fmt.Errorf("invalid bool value type %T", v)
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		var i int64
		switch x := v.(type) {
		case string:
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil {
				return nil, err
			}
			i = n
		case int64:
			i = x
		default:
			return nil, fmt.Errorf("invalid int64 value type %T", v)
		}
		if out.OverflowInt(i) {
			return nil, fmt.Errorf("value %d out of range for %s", i, t)
		}
		out.SetInt(i)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		var i int64
		switch x := v.(type) {
		case string:
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil {
				return nil, err
			}
			i = n
		case int64:
			i = x
		default:
			return nil, fmt.Errorf("invalid int64 value type %T", v)
		}
		if i < 0 || out.OverflowUint(uint64(i)) {
			return nil, fmt.Errorf("value %d out of range for %s", i, t)
		}
		out.SetUint(uint64(i))
	case t.Kind() == reflect.Float64:
		f, err := toFloat(v)
		if err != nil {
			return nil, err
		}
		out.SetFloat(f)
	case t.Kind() == reflect.String:
		out.SetString(fmt.Sprintf("%v", v))
	case t == reflect.TypeOf([]string(nil)):
		list := []string{}
		switch x := v.(type) {
		case string:
			list = append(list, strings.Split(x, ",")...)
		case []interface{}:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("invalid list member %v (%T), want a string", e, e)
				}
				list = append(list, s)
			}
		default:
			return nil, fmt.Errorf("invalid []string value type %T", v)
		}
		return list, nil
	case t == reflect.TypeOf([]float64(nil)):
		list := []float64{}
		var members []interface{}
		switch x := v.(type) {
		case string:
			for _, s := range strings.Split(x, ",") {
				members = append(members, strings.TrimSpace(s))
			}
		case []interface{}:
			members = x
		default:
			return nil, fmt.Errorf("invalid []float64 value type %T", v)
		}
		for _, e := range members {
			f, err := toFloat(e)
			if err != nil {
				return nil, err
			}
			list = append(list, f)
		}
		return list, nil
	default:
		return nil, fmt.Errorf("invalid value type %T", v)
	}
	return out.Interface(), nil
}

func toFloat(v interface{}) (float64, error) {
	switch x := v.(type) {
	case string:
		return strconv.ParseFloat(x, 64)
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	}
	return 0, fmt.Errorf("invalid float64 value type %T", v)
}

// --- flag values that the standard flag package lacks ---

// newLogLevelValue: --log-level prints "(default INFO)" (D-CLI-03).
func newLogLevelValue(def interface{}) flag.Value {
	l := def.(lg.LogLevel)
	return &l
}

// cfgLogLevel validates log_level in a config file (D-CFG-08).
func cfgLogLevel(v interface{}) (interface{}, error) {
	return lg.ParseLogLevel(fmt.Sprintf("%v", v))
}

// stringArray is a repeatable string flag; values are not split on commas.
// It is never nil so an empty list is reported as [] rather than null.
type stringArray []string

func newStringArray(def []string) *stringArray {
	a := append(stringArray{}, def...)
	return &a
}

func (a *stringArray) Set(s string) error { *a = append(*a, s); return nil }
func (a *stringArray) String() string     { return strings.Join(*a, ",") }
func (a *stringArray) Get() interface{}   { return []string(*a) }

// floatArray is the repeatable, comma-separated float flag of
// --e2e-processing-latency-percentile; values are kept sorted descending
// (D-CLI-46). A value that is not a float is remembered in bad because NSQ
// exits 1 with "Could not parse: <v>" instead of the usual exit 2.
type floatArray struct {
	vals []float64
	bad  string
}

func newFloatArray(def []float64) *floatArray {
	return &floatArray{vals: append([]float64{}, def...)}
}

func (a *floatArray) Set(s string) error {
	for _, e := range strings.Split(s, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(e), 64)
		if err != nil {
			if a.bad == "" {
				a.bad = e
			}
			return nil
		}
		a.vals = append(a.vals, f)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(a.vals)))
	return nil
}

func (a *floatArray) String() string {
	if a == nil {
		return ""
	}
	s := make([]string, len(a.vals))
	for i, f := range a.vals {
		s[i] = strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strings.Join(s, ",")
}

func (a *floatArray) Get() interface{} { return a.vals }

// tlsRequiredValue is --tls-required: a boolean flag (bare flag = true) that
// also accepts "tcp-https" (D-CLI-52).
type tlsRequiredValue int

func newTLSRequiredValue(def interface{}) flag.Value {
	t := tlsRequiredValue(def.(int))
	return &t
}

func (t *tlsRequiredValue) Set(s string) error {
	if strings.EqualFold(s, "tcp-https") {
		*t = nsqd.TLSRequiredExceptHTTP
		return nil
	}
	required, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*t = nsqd.TLSNotRequired
	if required {
		*t = nsqd.TLSRequired
	}
	return nil
}

func (t *tlsRequiredValue) String() string   { return strconv.Itoa(int(*t)) }
func (t *tlsRequiredValue) Get() interface{} { return int(*t) }
func (t *tlsRequiredValue) IsBoolFlag() bool { return true }

// cfgTLSRequired accepts a bool or a string in a config file (D-CFG-06).
func cfgTLSRequired(v interface{}) (interface{}, error) {
	var t tlsRequiredValue
	if err := t.Set(fmt.Sprintf("%v", v)); err != nil {
		return nil, err
	}
	return int(t), nil
}

// tlsMinVersionValue is --tls-min-version; it holds the crypto/tls constant,
// which --help prints as the default (769) (D-CLI-53).
type tlsMinVersionValue uint16

func newTLSMinVersionValue(def interface{}) flag.Value {
	t := tlsMinVersionValue(def.(uint16))
	return &t
}

func (t *tlsMinVersionValue) Set(s string) error {
	switch strings.ToLower(s) {
	case "":
		// keeps the current value
	case "tls1.0":
		*t = tls.VersionTLS10
	case "tls1.1":
		*t = tls.VersionTLS11
	case "tls1.2":
		*t = tls.VersionTLS12
	case "tls1.3":
		*t = tls.VersionTLS13
	default:
		// "ssl3.0" is in the help text yet rejected, as in NSQ.
		return fmt.Errorf("unknown tlsVersionOption %q", s)
	}
	return nil
}

func (t *tlsMinVersionValue) String() string   { return strconv.Itoa(int(*t)) }
func (t *tlsMinVersionValue) Get() interface{} { return uint16(*t) }

// cfgTLSMinVersion: an empty string drops the key so the default stays (D-CFG-07).
func cfgTLSMinVersion(v interface{}) (interface{}, error) {
	var t tlsMinVersionValue
	if err := t.Set(fmt.Sprintf("%v", v)); err != nil {
		return nil, err
	}
	if t == 0 {
		return nil, nil
	}
	return uint16(t), nil
}
