//go:build race

package daemons

// RaceEnabled reports whether this test binary runs under -race; pass it to
// Build to build the daemons with -race too.
const RaceEnabled = true
