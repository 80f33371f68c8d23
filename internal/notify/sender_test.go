package notify

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/egress"
	"github.com/minimax/platform-hub/internal/scheme"
)

// TestWebhookDestinations: a webhook on loopback, by address or by a
// name that resolves there, is refused when connecting (whatever admission
// let through earlier) and the receiver is never reached; the error shows
// the class of failure, never the address, the port or a certificate's
// names. Allowlisted, the same receiver gets the alert.
func TestWebhookDestinations(t *testing.T) {
	g := NewWithT(t)
	var reached atomic.Int32
	rcv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	defer rcv.Close()
	_, port, _ := net.SplitHostPort(rcv.Listener.Addr().String())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "hook"},
		Data: map[string][]byte{"secret": []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}}
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(secret).Build()
	channel := func(url string) *hubv1.NotificationChannel {
		return &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "ops"},
			Spec: hubv1.NotificationChannelSpec{Webhook: &hubv1.WebhookChannel{URL: url,
				SigningSecretRef: hubv1.SecretKeyRef{Name: "hook", Key: "secret"}}}}
	}
	resolver := egress.StaticResolver{"rebind.attacker.net": {netip.MustParseAddr("127.0.0.1")}}
	msg := Message{ID: "a1", Body: []byte(`{}`)}
	ctx := context.Background()

	strict := &Sender{Reader: reader, HTTP: rcv.Client(), Egress: &egress.Policy{Resolver: resolver}}
	for _, url := range []string{"https://127.0.0.1:" + port + "/", "https://rebind.attacker.net:" + port + "/"} {
		_, err := strict.Send(ctx, channel(url), msg, nil)
		g.Expect(err).To(MatchError(classRefused), url)
		g.Expect(err.Error()).NotTo(Or(ContainSubstring("127.0.0.1"), ContainSubstring(port)))
		g.Expect(Cause(err)).To(ContainSubstring("127.0.0.1"), "the operator's log has the cause")
	}
	g.Expect(reached.Load()).To(BeZero())

	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	allowed := &Sender{Reader: reader, HTTP: rcv.Client(), Egress: &egress.Policy{Resolver: resolver, Allow: loopback}}
	_, err := allowed.Send(ctx, channel("https://rebind.attacker.net:"+port+"/"), msg, nil)
	g.Expect(err).To(MatchError(ContainSubstring("TLS handshake")), "the test server's certificate does not name rebind.attacker.net")
	g.Expect(err.Error()).NotTo(ContainSubstring("example.com"), "a certificate's names stay out of status")
	_, err = allowed.Send(ctx, channel("https://127.0.0.1:"+port+"/"), msg, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reached.Load()).To(BeEquivalentTo(1))

	untrusted := &Sender{Reader: reader, Egress: &egress.Policy{Allow: loopback}} // system roots
	_, err = untrusted.Send(ctx, channel("https://127.0.0.1:"+port+"/"), msg, nil)
	g.Expect(err).To(MatchError(classTLS))

	rcv.Close()
	_, err = allowed.Send(ctx, channel("https://127.0.0.1:"+port+"/"), msg, nil)
	g.Expect(err).To(MatchError(classConnect))
}

// TestSigningSecretFailuresLookAlike: a missing Secret, a missing key and
// a value that is no signing secret all give one answer, so the channel's
// status tells a Developer nothing about which Secrets and keys exist.
func TestSigningSecretFailuresLookAlike(t *testing.T) {
	g := NewWithT(t)
	reader := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "other"},
			Data: map[string][]byte{"token": []byte("not a signing secret")}}).Build()
	s := &Sender{Reader: reader}
	answers := map[string]bool{}
	for _, ref := range []hubv1.SecretKeyRef{{Name: "missing", Key: "hmac"}, {Name: "other", Key: "missing"}, {Name: "other", Key: "token"}} {
		ch := &hubv1.NotificationChannel{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "ops"},
			Spec: hubv1.NotificationChannelSpec{Webhook: &hubv1.WebhookChannel{URL: "https://hooks.example.com/", SigningSecretRef: ref}}}
		_, err := s.Send(context.Background(), ch, Message{ID: "a1", Body: []byte(`{}`)}, nil)
		g.Expect(err).To(HaveOccurred())
		answers[strings.NewReplacer(ref.Name, "NAME", ref.Key, "KEY").Replace(err.Error())] = true
	}
	g.Expect(answers).To(HaveLen(1), "one answer for every failure: %v", answers)
}

// TestReceiverHangsUp: a receiver that accepts the connection and closes
// it without answering is a failed connection, not an unknown failure.
func TestReceiverHangsUp(t *testing.T) {
	g := NewWithT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// Read the whole request, so that closing sends FIN, not RST.
			if req, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
				_, _ = io.Copy(io.Discard, req.Body)
			}
			_ = conn.Close()
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/", strings.NewReader(`{}`))
	err = (&Sender{}).do(&http.Client{}, req)
	g.Expect(err).To(MatchError(classConnect))
}
