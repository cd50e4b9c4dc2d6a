//go:build !race

package gonsq

const raceEnabled = false
