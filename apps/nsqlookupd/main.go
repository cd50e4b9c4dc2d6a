// Command nsqlookupd runs the NSQ discovery service: it parses flags and an
// optional TOML config (L-CLI-*), starts package nsqlookupd and exits
// gracefully on SIGINT, SIGTERM or SIGHUP.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/mreiferson/go-options"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/version"
	"github.com/ournsq/nsq/nsqlookupd"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// newFlagSet declares every flag with the defaults from opts. Flag names
// are a public interface (scripts, service files): they match NSQ's.
func newFlagSet(opts *nsqlookupd.Options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nsqlookupd", flag.ContinueOnError)
	fs.SetOutput(stderr)

	fs.String("config", "", "path to config file")
	fs.Bool("version", false, "print version string")

	logLevel := opts.LogLevel
	fs.Var(&logLevel, "log-level", "set log verbosity: debug, info, warn, error, or fatal")
	fs.String("log-prefix", opts.LogPrefix, "log message prefix")
	fs.Bool("verbose", false, "[deprecated] has no effect, use --log-level")

	fs.String("tcp-address", opts.TCPAddress, "<addr>:<port> to listen on for TCP clients")
	fs.String("http-address", opts.HTTPAddress, "<addr>:<port> to listen on for HTTP clients")
	fs.String("broadcast-address", opts.BroadcastAddress, "address of this lookupd node, (default to the OS hostname)")

	fs.Duration("inactive-producer-timeout", opts.InactiveProducerTimeout,
		"duration of time a producer will remain in the active list since its last ping")
	fs.Duration("tombstone-lifetime", opts.TombstoneLifetime,
		"duration of time a producer will remain tombstoned if registration remains")
	return fs
}

// logFatal writes `[nsqlookupd] <ts> FATAL: <msg>` to stderr. The prefix is
// fixed: it is also used before --log-prefix is known.
func logFatal(f string, args ...interface{}) {
	lg.Logf(lg.New("[nsqlookupd] "), lg.FATAL, lg.FATAL, f, args...)
}

// loadConfig decodes the TOML file at path (if any) and validates the keys
// that need more than go-options' coercion (L-CLI-02).
func loadConfig(path string) (map[string]interface{}, error) {
	cfg := map[string]interface{}{}
	if path == "" {
		return cfg, nil
	}
	if _, err := toml.DecodeFile(path, &cfg); err != nil {
		return nil, fmt.Errorf("failed to load config file %s - %s", path, err)
	}
	if v, ok := cfg["log_level"]; ok {
		lvl, err := lg.ParseLogLevel(fmt.Sprintf("%v", v))
		if err != nil {
			return nil, fmt.Errorf("failed parsing log_level %+v", v)
		}
		cfg["log_level"] = lvl
	}
	return cfg, nil
}

// run is main without os.Exit: it returns the exit status (0 ok or graceful
// signal exit, 1 start-up or runtime failure, 2 bad command line).
func run(args []string, stdout, stderr io.Writer) int {
	// Catch signals before anything is bound so an early SIGTERM is graceful
	// too. SIGHUP is treated like SIGTERM.
	sigCh := make(chan os.Signal, 1)
	signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigCh)

	opts := nsqlookupd.NewOptions()
	fs := newFlagSet(opts, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.Lookup("version").Value.(flag.Getter).Get().(bool) {
		fmt.Fprintln(stdout, version.String("nsqlookupd"))
		return 0
	}

	cfg, err := loadConfig(fs.Lookup("config").Value.String())
	if err != nil {
		logFatal("%s", err)
		return 1
	}
	options.Resolve(opts, fs, cfg)

	l, err := nsqlookupd.New(opts)
	if err != nil {
		logFatal("failed to instantiate nsqlookupd - %s", err)
		return 1
	}

	mainErr := make(chan error, 1)
	go func() { mainErr <- l.Main() }()

	select {
	case <-sigCh:
		l.Exit()
		return 0
	case err := <-mainErr:
		// Main already logged the failure.
		l.Exit()
		if err != nil {
			return 1
		}
		return 0
	}
}
