//go:build race

package gonsq

// raceEnabled: the test binary runs under -race, so the daemons are built
// with -race as well.
const raceEnabled = true
