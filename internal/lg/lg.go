// Package lg owns log levels and the NSQ log line format:
//
//	<prefix>YYYY/MM/DD HH:MM:SS.micro <LEVEL>: <message>
package lg

import (
	"fmt"
	"log"
	"os"
	"strings"
	"sync/atomic"
)

// LogLevel is a log severity; the numeric values are NSQ's (visible through
// GET /config/log_level).
type LogLevel int

const (
	DEBUG = LogLevel(1)
	INFO  = LogLevel(2)
	WARN  = LogLevel(3)
	ERROR = LogLevel(4)
	FATAL = LogLevel(5)
)

// String is the name used in log lines.
func (l *LogLevel) String() string {
	switch *l {
	case DEBUG:
		return "DEBUG"
	case INFO:
		return "INFO"
	case WARN:
		return "WARNING"
	case ERROR:
		return "ERROR"
	case FATAL:
		return "FATAL"
	}
	return "INVALID"
}

// Get makes LogLevel a flag.Getter.
func (l *LogLevel) Get() interface{} { return *l }

// Set parses a level name (case-insensitive); it makes LogLevel a flag.Value.
func (l *LogLevel) Set(s string) error {
	lvl, err := ParseLogLevel(s)
	if err != nil {
		return err
	}
	*l = lvl
	return nil
}

// ParseLogLevel turns "debug", "info", "warn", "error" or "fatal" into a level.
func ParseLogLevel(s string) (LogLevel, error) {
	switch strings.ToLower(s) {
	case "debug":
		return DEBUG, nil
	case "info":
		return INFO, nil
	case "warn":
		return WARN, nil
	case "error":
		return ERROR, nil
	case "fatal":
		return FATAL, nil
	}
	return 0, fmt.Errorf("invalid log level '%s' (debug, info, warn, error, fatal)", s)
}

// Logger is the sink daemons write to; *log.Logger satisfies it.
type Logger interface {
	Output(calldepth int, s string) error
}

// NilLogger discards everything.
type NilLogger struct{}

// Output implements Logger.
func (NilLogger) Output(int, string) error { return nil }

// New returns a stderr logger that writes NSQ's line format with prefix.
func New(prefix string) Logger {
	return log.New(os.Stderr, prefix, log.Ldate|log.Ltime|log.Lmicroseconds)
}

// Logf writes one line at msgLevel if it is at or above cfgLevel.
func Logf(logger Logger, cfgLevel LogLevel, msgLevel LogLevel, f string, args ...interface{}) {
	if cfgLevel > msgLevel || logger == nil {
		return
	}
	logger.Output(3, msgLevel.String()+": "+fmt.Sprintf(f, args...))
}

// AtomicLevel is a level that can be changed at runtime (PUT /config/log_level)
// while other goroutines read it.
type AtomicLevel struct{ v atomic.Int32 }

// Load returns the current level.
func (a *AtomicLevel) Load() LogLevel { return LogLevel(a.v.Load()) }

// Store replaces the current level.
func (a *AtomicLevel) Store(l LogLevel) { a.v.Store(int32(l)) }
