//go:build race

package e2e

// raceEnabled: the test binary runs under -race, so the daemons are built
// with -race as well.
const raceEnabled = true
