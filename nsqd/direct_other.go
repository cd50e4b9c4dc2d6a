//go:build !unix

package nsqd

import (
	"errors"
	"syscall"
)

const canWriteNonBlocking = false

func writeNonBlocking(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
