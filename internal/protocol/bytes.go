package protocol

import (
	"bufio"
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

// ReadInt32 reads a 4-byte big-endian signed length, with io.ReadFull's
// errors (io.EOF before the first byte, io.ErrUnexpectedEOF after).
//
// From a *bufio.Reader (nsqd's connections, MPUB bodies) it reads in place:
// a local buffer handed to an io.Reader escapes, and that was one allocation
// per PUB and per MPUB member.
func ReadInt32(r io.Reader) (int32, error) {
	if br, ok := r.(*bufio.Reader); ok {
		b, err := br.Peek(4)
		if len(b) == 4 {
			v := int32(binary.BigEndian.Uint32(b))
			br.Discard(4)
			return v, nil
		}
		// short: consume what there was, as io.ReadFull would
		br.Discard(len(b))
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return int32(binary.BigEndian.Uint32(b[:])), nil
}
