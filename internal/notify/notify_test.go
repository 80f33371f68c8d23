package notify

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/minimax/platform-hub/internal/alertlog"
)

func TestParseConfig(t *testing.T) {
	g := NewWithT(t)
	c, err := ParseConfig(map[string][]byte{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.SMTP).To(BeNil())
	g.Expect(c.SMS).To(BeNil())

	c, err = ParseConfig(map[string][]byte{KeySMTPHost: []byte("smtp.example.com"), KeySMTPFrom: []byte("hub@example.com"),
		KeySMSAccountSID: []byte("AC1"), KeySMSAuthToken: []byte("t"), KeySMSFrom: []byte("+15005550006")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*c.SMTP).To(Equal(SMTPConfig{Host: "smtp.example.com", Port: 587, From: "hub@example.com", TLS: TLSStartTLS}))
	g.Expect(c.SMS.URL).To(Equal(DefaultSMSURL))

	for _, tc := range []struct {
		data map[string][]byte
		want string
	}{
		{map[string][]byte{KeySMTPHost: []byte("h")}, "smtp-from is required with smtp-host"},
		{map[string][]byte{KeySMTPHost: []byte("h"), KeySMTPFrom: []byte("a@b.c"), KeySMTPPort: []byte("smtp")}, `smtp-port must be a port number, not "smtp"`},
		{map[string][]byte{KeySMTPHost: []byte("h"), KeySMTPFrom: []byte("a@b.c"), KeySMTPTLS: []byte("ssl")}, "smtp-tls must be starttls, tls or none"},
		{map[string][]byte{KeySMTPHost: []byte("h"), KeySMTPFrom: []byte("a@b.c"), KeySMTPCA: []byte("nope")}, "smtp-ca.crt holds no PEM certificate"},
		{map[string][]byte{KeySMSAccountSID: []byte("AC1")}, "sms-auth-token and sms-from are required"},
		{map[string][]byte{KeySMSAccountSID: []byte("AC1"), KeySMSAuthToken: []byte("t"), KeySMSFrom: []byte("x"), KeySMSURL: []byte("ftp://x")}, "sms-url must be an absolute https:// URL"},
	} {
		_, err := ParseConfig(tc.data)
		g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
	}
}

func TestRender(t *testing.T) {
	g := NewWithT(t)
	eta := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	a, err := NewAlert(alertlog.KindCapThreshold, "cap_x_1_80", time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), CapThreshold{
		Cap: ObjectRef{Namespace: "hub-system", Name: "org-budget"}, Scope: "Organization", Threshold: 80, Percent: 83,
		Spent: "830.5", Limit: "1000", Currency: "USD", Tokens: 5, TokenLimit: 10, Enforcement: "Hard",
		ProjectedExhaustion: &eta, DashboardURL: "https://hub.example.com/usage"})
	g.Expect(err).NotTo(HaveOccurred())
	m, err := Render(a)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m.ID).To(Equal("cap_x_1_80"))
	g.Expect(string(m.Body)).To(ContainSubstring(`"type":"spendingcap.threshold"`))
	g.Expect(m.Subject).To(Equal("[Platform Hub] The organization reached 80% of spending cap org-budget"))
	g.Expect(m.Text).To(ContainSubstring("(830.5 of 1000 USD; 5 of 10 tokens)"))
	g.Expect(m.Text).To(ContainSubstring("reaches 100% at 2026-11-25T06:00:00Z"))
	g.Expect(m.Text).To(ContainSubstring("API calls will be refused then"))
	g.Expect(m.Short).To(HaveSuffix("https://hub.example.com/usage"))

	k, err := NewAlert(alertlog.KindKeyExpiring, "key_x_1_1d", time.Now(), KeyExpiring{Key: ObjectRef{Namespace: "chatbot", Name: "ci"},
		Project: "chatbot", KeyID: "AbC", DaysLeft: 1, ExpiresAt: eta})
	g.Expect(err).NotTo(HaveOccurred())
	m, err = Render(k)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m.Subject).To(Equal("[Platform Hub] API key ci of project chatbot expires in 1 day"))

	_, err = Render(alertlog.Alert{ID: "bad", Payload: []byte(`{"type":"other"}`)})
	g.Expect(err).To(MatchError(ContainSubstring(`unknown type "other"`)))
}

func TestBackoff(t *testing.T) {
	g := NewWithT(t)
	d := &Dispatcher{}
	within := func(n int, base time.Duration) {
		for range 50 {
			b := d.backoff(n)
			g.Expect(b).To(BeNumerically(">=", base*8/10), "attempt %d", n)
			g.Expect(b).To(BeNumerically("<=", base*12/10), "attempt %d", n)
		}
	}
	within(1, 10*time.Second)
	within(2, 20*time.Second)
	within(5, 160*time.Second)
	within(20, time.Hour)
	// Attempts over 24 hours: enough to ride out a long outage, few
	// enough not to hammer the endpoint.
	var total time.Duration
	attempts := 0
	for total < DefaultRetryFor {
		attempts++
		total += d.backoff(attempts)
	}
	g.Expect(attempts).To(BeNumerically("~", 30, 8))
	g.Expect(strings.Contains(truncate(strings.Repeat("é", 1000)), "\uFFFD")).To(BeFalse())
}
