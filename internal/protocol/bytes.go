package protocol

import (
	"encoding/binary"
	"errors"
	"io"
)

var errNotDigits = errors.New("not a base-10 unsigned integer")

// ParseUint parses b as decimal digits only: no sign, no spaces, no dots
// (NSQ's RDY/REQ/DPUB parsing). Overflow of int64 is an error.
func ParseUint(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, errNotDigits
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotDigits
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, errNotDigits
		}
		n = n*10 + d
	}
	return n, nil
}

// ReadInt32 reads a 4-byte big-endian signed length.
func ReadInt32(r io.Reader) (int32, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(b[:])), nil
}
