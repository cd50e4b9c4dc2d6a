//go:build unix

package nsqd

import "syscall"

const canWriteNonBlocking = true

// writeNonBlocking makes one write(2) of b on raw's (non-blocking) socket
// and returns what it wrote: it never waits for the socket to drain.
func writeNonBlocking(raw syscall.RawConn, b []byte) (n int, err error) {
	cerr := raw.Write(func(fd uintptr) bool {
		n, err = syscall.Write(int(fd), b)
		return true
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}
