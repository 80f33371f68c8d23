package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/wneessen/go-mail"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/egress"
)

// ErrGone marks a delivery the channel refuses for good: a webhook that
// answered 410 Gone. The channel is disabled and not tried again.
var ErrGone = errors.New("the endpoint answered 410 Gone")

// Sender delivers a rendered alert to one channel.
type Sender struct {
	// Reader reads Secrets (the configuration, webhook signing secrets)
	// when they are needed, without caching Secrets.
	Reader client.Reader
	// ConfigSecret is the hub's configuration Secret.
	ConfigSecret types.NamespacedName
	// HTTP posts webhooks and SMS; nil means a client with a 15 s timeout.
	// For webhooks, its redirect policy and its transport's dialer are
	// always replaced by Egress's, and it uses no proxy.
	HTTP *http.Client
	// Egress decides which webhook destinations may be reached, at
	// admission and again when connecting; nil allows public destinations
	// only. SMS and email go to the operator's providers and are not
	// subject to it.
	Egress *egress.Policy

	// webhook is built once, so that connections to receivers are reused.
	webhookOnce sync.Once
	webhook     *http.Client
	// Now is the time written into webhook-timestamp; nil means time.Now.
	// It is the real time of sending, never a test's fake clock, since
	// receivers check it against their own.
	Now func() time.Time
}

// Send delivers m to ch, skipping the recipients in done (served by an
// earlier attempt). A nil error means the channel accepted it. served lists
// the recipients this attempt reached, for channels that send to each of
// several (SMS), so that a retry does not text them again.
func (s *Sender) Send(ctx context.Context, ch *hubv1.NotificationChannel, m Message, done []string) (served []string, err error) {
	switch {
	case ch.Spec.Webhook != nil:
		return nil, s.sendWebhook(ctx, ch, m)
	case ch.Spec.Email != nil:
		cfg, err := s.config(ctx)
		if err != nil {
			return nil, err
		}
		if cfg.SMTP == nil {
			return nil, fmt.Errorf("email is not configured: set %s and %s in Secret %s", KeySMTPHost, KeySMTPFrom, s.ConfigSecret)
		}
		return nil, sendEmail(ctx, cfg.SMTP, ch.Spec.Email.To, m)
	case ch.Spec.SMS != nil:
		cfg, err := s.config(ctx)
		if err != nil {
			return nil, err
		}
		if cfg.SMS == nil {
			return nil, fmt.Errorf("SMS is not configured: set %s, %s and %s in Secret %s",
				KeySMSAccountSID, KeySMSAuthToken, KeySMSFrom, s.ConfigSecret)
		}
		return s.sendSMS(ctx, cfg.SMS, ch.Spec.SMS.To, m, done)
	}
	return nil, errors.New("the channel names no destination")
}

// Email sends m to addresses through the configuration Secret's SMTP
// server (invitations use it; alerts go through channels).
func (s *Sender) Email(ctx context.Context, to []string, m Message) error {
	cfg, err := s.config(ctx)
	if err != nil {
		return err
	}
	if cfg.SMTP == nil {
		return fmt.Errorf("email is not configured: set %s and %s in Secret %s", KeySMTPHost, KeySMTPFrom, s.ConfigSecret)
	}
	return sendEmail(ctx, cfg.SMTP, to, m)
}

func (s *Sender) config(ctx context.Context) (Config, error) {
	// The cause goes to the server's log only: an error from the API
	// server names the server's ServiceAccount and its permissions.
	secret := &corev1.Secret{}
	if err := s.Reader.Get(ctx, s.ConfigSecret, secret); err != nil {
		return Config{}, &deliveryError{class: classConfig, cause: fmt.Errorf("reading the hub configuration Secret %s: %w",
			s.ConfigSecret, err)}
	}
	cfg, err := ParseConfig(secret.Data)
	if err != nil {
		return Config{}, &deliveryError{class: classConfig, cause: fmt.Errorf("the hub configuration Secret %s: %w", s.ConfigSecret, err)}
	}
	return cfg, nil
}

// httpClient is the client for SMS: the operator's provider, as configured.
func (s *Sender) httpClient() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	return &http.Client{Timeout: 15 * time.Second}
}

// webhookClient is the client for webhooks, which tenants point anywhere:
// it connects only where Egress allows (checking every address the host
// resolves to), through no proxy, and follows a redirect only to the same
// scheme and host.
func (s *Sender) webhookClient() *http.Client {
	s.webhookOnce.Do(func() { s.webhook = s.newWebhookClient() })
	return s.webhook
}

func (s *Sender) newWebhookClient() *http.Client {
	policy := s.egress()
	c := &http.Client{Timeout: 15 * time.Second}
	var transport *http.Transport
	if s.HTTP != nil {
		c = &http.Client{Timeout: s.HTTP.Timeout, Jar: s.HTTP.Jar}
		if t, ok := s.HTTP.Transport.(*http.Transport); ok {
			transport = t.Clone() // its TLS settings (roots) stay
		}
	}
	if transport == nil {
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	transport.Proxy, transport.DialContext, transport.DialTLSContext = nil, policy.DialContext, nil
	c.Transport, c.CheckRedirect = transport, policy.CheckRedirect
	return c
}

func (s *Sender) egress() *egress.Policy {
	if s.Egress == nil {
		return &egress.Policy{}
	}
	return s.Egress
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// sendWebhook posts the alert signed as Standard Webhooks define: an HMAC-
// SHA256 over "id.timestamp.body" with the channel's secret, in the
// webhook-id, webhook-timestamp and webhook-signature headers. Every attempt
// carries the same ID and body, so receivers can drop repeats.
func (s *Sender) sendWebhook(ctx context.Context, ch *hubv1.NotificationChannel, m Message) error {
	signer, err := s.signer(ctx, ch)
	if err != nil {
		return err
	}
	if err := s.egress().CheckURL(ch.Spec.Webhook.URL); err != nil {
		// Admission checked it, perhaps under an older policy.
		return &deliveryError{class: classRefused, cause: err}
	}
	ts := s.now()
	signature, err := signer.Sign(m.ID, ts, m.Body)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.Spec.Webhook.URL, bytes.NewReader(m.Body))
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "platform-hub")
	req.Header.Set(standardwebhooks.HeaderWebhookID, m.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(ts.Unix()))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, signature)
	err = s.do(s.webhookClient(), req)
	var status *statusError
	if errors.As(err, &status) && status.code == http.StatusGone {
		return ErrGone
	}
	return err
}

// statusError is an answer other than 2xx. Only the status is kept: the
// body is the endpoint's, and status and history are readable by tenants.
type statusError struct {
	code   int
	status string
}

func (e *statusError) Error() string { return "the endpoint answered " + e.status }

// signer reads the channel's signing secret. Every way it can fail gets
// the same answer, so that the channel's status (which the namespace's
// Developers read) tells nothing of which Secrets and keys exist; the
// cause goes to the server's log.
func (s *Sender) signer(ctx context.Context, ch *hubv1.NotificationChannel) (*standardwebhooks.Webhook, error) {
	ref := ch.Spec.Webhook.SigningSecretRef
	unusable := func(cause error) error {
		return &deliveryError{class: fmt.Sprintf("the signing secret is unusable: key %s of Secret %s in this namespace "+
			"must hold whsec_ followed by base64, and the hub must be allowed to read it", ref.Key, ref.Name), cause: cause}
	}
	secret := &corev1.Secret{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: ch.Namespace, Name: ref.Name}, secret); err != nil {
		return nil, unusable(err)
	}
	value := strings.TrimSpace(string(secret.Data[ref.Key]))
	if !strings.HasPrefix(value, "whsec_") {
		return nil, unusable(errors.New("the key is missing or does not start with whsec_"))
	}
	signer, err := standardwebhooks.NewWebhook(value)
	if err != nil {
		// The library's error quotes nothing of the secret.
		return nil, unusable(err)
	}
	return signer, nil
}

// do sends req with c and turns anything but 2xx into an error.
func (s *Sender) do(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return classify(err)
	}
	defer func() { _ = resp.Body.Close() }()
	// Drain a little of the answer so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &statusError{code: resp.StatusCode, status: resp.Status}
}

// sendSMS sends one text per number through a provider with Twilio's
// Messages API shape: a form POST with To, From and Body, under basic
// authentication with the account SID and auth token.
func (s *Sender) sendSMS(ctx context.Context, cfg *SMSConfig, to []string, m Message, done []string) ([]string, error) {
	endpoint := fmt.Sprintf("%s/2010-04-01/Accounts/%s/Messages.json", cfg.URL, url.PathEscape(cfg.AccountSID))
	var errs []error
	var served []string
	for _, number := range to {
		if slices.Contains(done, number) {
			continue
		}
		form := url.Values{"To": {number}, "From": {cfg.From}, "Body": {m.Short}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return served, fmt.Errorf("building the SMS request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(cfg.AccountSID, cfg.AuthToken)
		if err := s.do(s.httpClient(), req); err != nil {
			errs = append(errs, fmt.Errorf("to %s: %w", number, err))
		} else {
			served = append(served, number)
		}
	}
	return served, errors.Join(errs...)
}

// sendEmail sends one message to all recipients.
func sendEmail(ctx context.Context, cfg *SMTPConfig, to []string, m Message) error {
	msg := mail.NewMsg()
	if err := msg.From(cfg.From); err != nil {
		return fmt.Errorf("%s %q: %w", KeySMTPFrom, cfg.From, err)
	}
	if err := msg.To(to...); err != nil {
		return fmt.Errorf("recipients: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID + "@platform-hub")
	msg.SetDate()
	msg.SetBodyString(mail.TypeTextPlain, m.Text)

	opts := []mail.Option{mail.WithPort(cfg.Port), mail.WithTimeout(15 * time.Second)}
	switch cfg.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if cfg.RootCAs != nil {
		opts = append(opts, mail.WithTLSConfig(&tls.Config{ServerName: cfg.Host, RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}))
	}
	if cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	c, err := mail.NewClient(cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("SMTP settings: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		// Shown by class: the cause names the SMTP server's address.
		return classifyAs("email: ", fmt.Errorf("sending through %s:%d: %w", cfg.Host, cfg.Port, err))
	}
	return nil
}
