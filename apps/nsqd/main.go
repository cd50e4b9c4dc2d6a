// Command nsqd is the NSQ message daemon. This file only turns the command
// line and config file into nsqd.Options (options.go), starts the broker and
// stops it on a signal; everything else lives in package nsqd.
package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/ournsq/nsq/internal/lg"
	"github.com/ournsq/nsq/internal/version"
	"github.com/ournsq/nsq/nsqd"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole process; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	// Registered before anything else so that no signal in the list can kill
	// the process without a flush; SIGHUP included (Q-16, D-CLI-61).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	opts, err := loadOptions(args, stderr)
	if err != nil {
		return reportStartError(err, stdout, stderr)
	}
	opts.Logger = lg.New(opts.LogPrefix)

	n, err := nsqd.New(opts)
	if err != nil {
		if errors.Is(err, nsqd.ErrLoadMetadata) {
			// NSQ reports an unreadable nsqd.dat on its own (D-META-03)
			return reportStartError(fatalErr("%s", err), stdout, stderr)
		}
		return reportStartError(fatalErr("failed to instantiate nsqd - %s", err), stdout, stderr)
	}

	done := make(chan error, 1)
	go func() { done <- n.Main() }()

	code := 0
	select {
	case <-sigs:
	case err := <-done:
		// Main returns early only when serving failed (it logs why).
		if err != nil {
			code = 1
		}
	}
	n.Exit()
	return code
}

// reportStartError prints err the way NSQ does and returns the exit status.
func reportStartError(err error, stdout, stderr io.Writer) int {
	if errors.Is(err, errVersion) {
		fmt.Fprintln(stdout, version.String("nsqd"))
		return 0
	}
	var se *startError
	if !errors.As(err, &se) {
		se = &startError{code: 1, style: styleFatal, msg: err.Error()}
	}
	switch se.style {
	case styleFatal:
		// NSQ prints these with a fixed prefix, before --log-prefix applies.
		log.New(stderr, "[nsqd] ", log.Ldate|log.Ltime|log.Lmicroseconds).Print("FATAL: " + se.msg)
	case styleStd:
		log.New(stderr, "", log.LstdFlags).Print(se.msg)
	}
	return se.code
}
