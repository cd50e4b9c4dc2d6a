// Package version holds the protocol version string reported on the wire.
//
// NSQ's tools (nsqadmin in particular) gate features on the version a daemon
// reports, so we report the NSQ release whose behaviour we reproduce.
package version

import (
	"fmt"
	"runtime"
)

// Binary is the NSQ version reported in IDENTIFY responses, /info and lookupd
// registrations.
const Binary = "1.3.0"

// String renders the --version line for app, e.g. "nsqd v1.3.0 (built w/go1.26.8)".
func String(app string) string {
	return fmt.Sprintf("%s v%s (built w/%s)", app, Binary, runtime.Version())
}
