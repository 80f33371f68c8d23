package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/minimax/platform-hub/internal/egress"
)

// The classes of a failed delivery, as channel status and alert history
// show them. They say what went wrong and what to check, and never quote
// the network's own error: a dial or TLS error names addresses, ports and
// the names in a certificate, and tenants who can point a webhook anywhere
// would read them as a scanner's output.
const (
	classRefused = "the destination is not allowed: webhooks reach public addresses only, " +
		"unless the operator allowlists an internal receiver"
	classRedirect = "the receiver redirected the alert, and the hub refused a redirect to another host, " +
		"one that turns the POST into another method, or a sixth one in a row"
	classDNS     = "the host name could not be resolved"
	classTimeout = "the receiver did not answer in time"
	classConnect = "the connection to the receiver failed"
	classTLS     = "the TLS handshake with the receiver failed: its certificate must be valid, " +
		"trusted, and name the host"
	classOther  = "the request to the receiver failed"
	classConfig = "the hub's configuration Secret (email and SMS settings) cannot be read or is invalid: " +
		"an operator must check it; the server's log has the cause"
)

// deliveryError is a failure shown by its class; the cause is kept for
// the server's log ([Cause]) and for errors.Is.
type deliveryError struct {
	class string
	cause error
}

func (e *deliveryError) Error() string { return e.class }
func (e *deliveryError) Unwrap() error { return e.cause }

// Cause is the full error behind a failed delivery, for the operator's
// log only: never for status, history or a tenant's eyes.
func Cause(err error) string {
	var d *deliveryError
	if errors.As(err, &d) && d.cause != nil {
		return d.cause.Error()
	}
	return err.Error()
}

// classifyAs is classify with the class prefixed ("email: ").
func classifyAs(prefix string, err error) error {
	d := classOf(err)
	d.class = prefix + d.class
	return d
}

// classify turns an error from an HTTP client into its class.
func classify(err error) error { return classOf(err) }

func classOf(err error) *deliveryError {
	var (
		dnsErr      *net.DNSError
		netErr      net.Error
		unknownCA   x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		alertErr    tls.AlertError
	)
	class := classOther
	switch {
	case errors.Is(err, egress.ErrRedirect):
		class = classRedirect
	case errors.Is(err, egress.ErrForbidden):
		class = classRefused
	case errors.As(err, &dnsErr):
		class = classDNS
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidCert),
		errors.As(err, &verifyErr), errors.As(err, &recordErr), errors.As(err, &alertErr):
		class = classTLS
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		class = classTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		// The receiver closed a kept-alive connection as the request went out on it.
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		class = classConnect
	}
	return &deliveryError{class: class, cause: err}
}
