package notify

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ConfigSecretName is the default name of the hub's configuration Secret, in
// the hub's namespace. It holds the SMTP server and the SMS provider.
const ConfigSecretName = "hub-config"

// Keys of the configuration Secret.
const (
	KeySMTPHost     = "smtp-host"
	KeySMTPPort     = "smtp-port"
	KeySMTPUsername = "smtp-username"
	KeySMTPPassword = "smtp-password"
	KeySMTPFrom     = "smtp-from"
	KeySMTPTLS      = "smtp-tls"
	KeySMTPCA       = "smtp-ca.crt"

	KeySMSURL        = "sms-url"
	KeySMSAccountSID = "sms-account-sid"
	KeySMSAuthToken  = "sms-auth-token"
	KeySMSFrom       = "sms-from"
)

// SMTP TLS modes.
const (
	// TLSStartTLS upgrades the connection with STARTTLS and refuses to send
	// without it (the default).
	TLSStartTLS = "starttls"
	// TLSImplicit connects over TLS from the start (port 465).
	TLSImplicit = "tls"
	// TLSNone sends in plain text, for a relay on the same host or pod.
	TLSNone = "none"
)

// DefaultSMSURL is the provider the SMS settings default to: any service
// with Twilio's Messages API shape can stand in.
const DefaultSMSURL = "https://api.twilio.com"

// Config is the delivery configuration of the hub.
type Config struct {
	// SMTP is nil when email is not configured.
	SMTP *SMTPConfig
	// SMS is nil when SMS is not configured.
	SMS *SMSConfig
}

// SMTPConfig is the mail server alerts go through.
type SMTPConfig struct {
	Host               string
	Port               int
	Username, Password string
	From               string
	TLS                string
	// RootCAs, when set, replace the system roots for the server's
	// certificate (a private relay).
	RootCAs *x509.CertPool
}

// SMSConfig is a provider with Twilio's Messages API shape.
type SMSConfig struct {
	// URL is the API base; messages go to
	// {URL}/2010-04-01/Accounts/{AccountSID}/Messages.json.
	URL                   string
	AccountSID, AuthToken string
	// From is the sending number or messaging service.
	From string
}

// ParseConfig reads the configuration Secret's data. A section that is
// absent is nil; a section that is present but wrong is an error naming the
// key to change.
func ParseConfig(data map[string][]byte) (Config, error) {
	var c Config
	var errs []error
	if host := value(data, KeySMTPHost); host != "" {
		c.SMTP, errs = parseSMTP(data, host)
	}
	if sid := value(data, KeySMSAccountSID); sid != "" {
		var smsErrs []error
		c.SMS, smsErrs = parseSMS(data, sid)
		errs = append(errs, smsErrs...)
	}
	return c, errors.Join(errs...)
}

func value(data map[string][]byte, key string) string { return strings.TrimSpace(string(data[key])) }

func parseSMTP(data map[string][]byte, host string) (*SMTPConfig, []error) {
	var errs []error
	s := &SMTPConfig{Host: host, Port: 587, Username: value(data, KeySMTPUsername), Password: string(data[KeySMTPPassword]),
		From: value(data, KeySMTPFrom), TLS: TLSStartTLS}
	if p := value(data, KeySMTPPort); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			errs = append(errs, fmt.Errorf("%s must be a port number, not %q", KeySMTPPort, p))
		}
		s.Port = port
	}
	switch t := value(data, KeySMTPTLS); t {
	case "", TLSStartTLS:
	case TLSImplicit, TLSNone:
		s.TLS = t
	default:
		errs = append(errs, fmt.Errorf("%s must be %s, %s or %s, not %q", KeySMTPTLS, TLSStartTLS, TLSImplicit, TLSNone, t))
	}
	if s.From == "" {
		errs = append(errs, fmt.Errorf("%s is required with %s: the address alerts are sent from", KeySMTPFrom, KeySMTPHost))
	}
	if ca := data[KeySMTPCA]; len(ca) > 0 {
		s.RootCAs = x509.NewCertPool()
		if !s.RootCAs.AppendCertsFromPEM(ca) {
			errs = append(errs, fmt.Errorf("%s holds no PEM certificate", KeySMTPCA))
		}
	}
	return s, errs
}

func parseSMS(data map[string][]byte, sid string) (*SMSConfig, []error) {
	var errs []error
	s := &SMSConfig{URL: value(data, KeySMSURL), AccountSID: sid, AuthToken: value(data, KeySMSAuthToken), From: value(data, KeySMSFrom)}
	if s.URL == "" {
		s.URL = DefaultSMSURL
	}
	if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s must be an absolute https:// URL, not %q", KeySMSURL, s.URL))
	}
	if s.AuthToken == "" || s.From == "" {
		errs = append(errs, fmt.Errorf("%s and %s are required with %s", KeySMSAuthToken, KeySMSFrom, KeySMSAccountSID))
	}
	s.URL = strings.TrimSuffix(s.URL, "/")
	return s, errs
}
