// Package protocol holds wire-level helpers shared by nsqd and nsqlookupd:
// name validation, frame writing, client error types and number parsing.
package protocol

// ClientError is an error to report to a client on the wire: Code is the
// error code (E_INVALID, ...), Desc the text after it. Fatal errors close the
// connection after the error frame is written.
type ClientError struct {
	Code  string
	Desc  string
	Fatal bool
}

// Error renders the wire text "<CODE> <desc>".
func (e *ClientError) Error() string {
	if e.Desc == "" {
		return e.Code
	}
	return e.Code + " " + e.Desc
}

// NewFatal builds an error that closes the connection.
func NewFatal(code, desc string) *ClientError {
	return &ClientError{Code: code, Desc: desc, Fatal: true}
}

// NewNonFatal builds an error after which the connection stays open.
func NewNonFatal(code, desc string) *ClientError {
	return &ClientError{Code: code, Desc: desc, Fatal: false}
}
