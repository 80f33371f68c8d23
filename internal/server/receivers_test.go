package server_test

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// webhookReceiver is an alert endpoint on loopback (TLS) that does what a
// careful receiver does: it verifies the Standard Webhooks signature and
// timestamp with the reference library, refuses anything that fails, and
// acts on each webhook-id once.
type webhookReceiver struct {
	*httptest.Server
	secret string
	hook   *standardwebhooks.Webhook

	mu sync.Mutex
	// answer, when set, is the status answered instead of handling.
	answer int
	// attempts counts every request; accepted holds the bodies acted on,
	// in order; duplicates counts verified repeats of an accepted ID;
	// rejected holds why requests were refused.
	attempts   int
	accepted   []receivedWebhook
	seen       map[string]bool
	duplicates int
	rejected   []string
}

type receivedWebhook struct {
	ID     string
	Body   []byte
	Header http.Header
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	r := &webhookReceiver{secret: "whsec_" + base64.StdEncoding.EncodeToString(key), seen: map[string]bool{}}
	var err error
	if r.hook, err = standardwebhooks.NewWebhook(r.secret); err != nil {
		t.Fatal(err)
	}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *webhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.answer != 0 {
		w.WriteHeader(r.answer)
		return
	}
	if err := r.hook.Verify(body, req.Header); err != nil {
		r.rejected = append(r.rejected, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	if r.seen[id] {
		// Verified, but acted on before: a retry, or a replay within the
		// timestamp tolerance. Acknowledge, do nothing.
		r.duplicates++
		w.WriteHeader(http.StatusOK)
		return
	}
	r.seen[id] = true
	r.accepted = append(r.accepted, receivedWebhook{ID: id, Body: body, Header: req.Header.Clone()})
	w.WriteHeader(http.StatusNoContent)
}

func (r *webhookReceiver) setAnswer(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = code
}

func (r *webhookReceiver) snapshot() (accepted []receivedWebhook, attempts, duplicates int, rejected []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedWebhook(nil), r.accepted...), r.attempts, r.duplicates, append([]string(nil), r.rejected...)
}

// smtpServer is a real SMTP server in-process (emersion/go-smtp) that
// offers STARTTLS and takes PLAIN authentication only over TLS.
type smtpServer struct {
	addr   *net.TCPAddr
	caPEM  []byte
	user   string
	pass   string
	mu     sync.Mutex
	mails  []receivedMail
	server *smtp.Server
}

type receivedMail struct {
	From    string
	To      []string
	Message *mail.Message
	Body    string
	TLS     bool
	User    string
}

func newSMTPServer(t *testing.T) *smtpServer {
	// The test certificate of httptest is valid for 127.0.0.1.
	certSource := httptest.NewTLSServer(http.NotFoundHandler())
	cert := certSource.TLS.Certificates[0]
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certSource.Certificate().Raw})
	certSource.Close()

	s := &smtpServer{caPEM: caPEM, user: "hub@example.com", pass: "s3cret-smtp"}
	s.server = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{server: s, conn: c}, nil
	}))
	s.server.Domain = "localhost"
	s.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().(*net.TCPAddr)
	go func() { _ = s.server.Serve(l) }()
	t.Cleanup(func() { _ = s.server.Close() })
	return s
}

func (s *smtpServer) received() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.mails...)
}

type smtpSession struct {
	server *smtpServer
	conn   *smtp.Conn
	user   string
	from   string
	to     []string
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.server.user || password != s.server.pass {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, Message: "authentication required"}
	}
	s.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	bodyReader := msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		bodyReader = quotedprintable.NewReader(msg.Body)
	}
	body, err := io.ReadAll(bodyReader)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.server.mu.Lock()
	defer s.server.mu.Unlock()
	s.server.mails = append(s.server.mails, receivedMail{From: s.from, To: s.to, Message: msg, Body: string(body), TLS: isTLS, User: s.user})
	return nil
}

func (s *smtpSession) Reset()        { s.from, s.to = "", nil }
func (s *smtpSession) Logout() error { return nil }

// smsProvider answers like Twilio's Messages API. It can be told to refuse
// a number, with a status code.
type smsProvider struct {
	*httptest.Server
	mu       sync.Mutex
	accepted []smsRequest
	refused  map[string]int
}

type smsRequest struct {
	path, auth string
	form       url.Values
}

func newSMSProvider(t *testing.T) *smsProvider {
	p := &smsProvider{refused: map[string]int{}}
	p.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if code := p.refused[r.PostForm.Get("To")]; code != 0 {
			w.WriteHeader(code)
			return
		}
		p.accepted = append(p.accepted, smsRequest{path: r.Method + " " + r.URL.Path, auth: user + ":" + pass, form: r.PostForm})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"sid": "SM00000000000000000000000000000000", "status": "queued"}`)
	}))
	t.Cleanup(p.Close)
	return p
}

// refuse makes the provider answer code for number (0: accept again).
func (p *smsProvider) refuse(number string, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refused[number] = code
}

func (p *smsProvider) received() []smsRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]smsRequest(nil), p.accepted...)
}
