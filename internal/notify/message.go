package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/minimax/platform-hub/internal/alertlog"
)

// Envelope is the JSON body of every webhook, in the shape Standard Webhooks
// recommend: what happened, when, and its data.
type Envelope struct {
	// Type is the alert kind, such as "spendingcap.threshold".
	Type alertlog.Kind `json:"type"`
	// Timestamp is when the alert fired.
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// CapThreshold is the data of a spendingcap.threshold alert.
type CapThreshold struct {
	Cap ObjectRef `json:"cap"`
	// Scope is Project or Organization.
	Scope string `json:"scope"`
	// Project is the project capped (scope Project).
	Project string `json:"project,omitempty"`
	// Threshold is the percentage crossed; Percent is the use when the
	// alert fired.
	Threshold int32 `json:"threshold"`
	Percent   int32 `json:"percent"`
	// Spent and Limit are money in Currency, as decimal strings.
	Spent      string `json:"spent"`
	Limit      string `json:"limit,omitempty"`
	Currency   string `json:"currency,omitempty"`
	Tokens     int64  `json:"tokens"`
	TokenLimit int64  `json:"tokenLimit,omitempty"`
	// UnpricedCalls counts calls of the cycle that could not be priced, so
	// are not in Spent.
	UnpricedCalls int64 `json:"unpricedCalls,omitempty"`
	// Enforcement is Hard or AlertOnly.
	Enforcement string    `json:"enforcement"`
	CycleStart  time.Time `json:"cycleStart"`
	CycleEnd    time.Time `json:"cycleEnd"`
	// ProjectedExhaustion is when 100% is reached at the rate of the last
	// 24 hours, if before the cycle ends.
	ProjectedExhaustion *time.Time `json:"projectedExhaustion,omitempty"`
	// DashboardURL is the usage page of what is capped.
	DashboardURL string `json:"dashboardURL,omitempty"`
}

// KeyExpiring is the data of an apikey.expiring alert.
type KeyExpiring struct {
	Key      ObjectRef `json:"key"`
	Project  string    `json:"project"`
	KeyID    string    `json:"keyID"`
	Owner    string    `json:"owner,omitempty"`
	DaysLeft int32     `json:"daysLeft"`
	// ExpiresAt is when the key stops working.
	ExpiresAt    time.Time `json:"expiresAt"`
	DashboardURL string    `json:"dashboardURL,omitempty"`
}

// NewAlert builds the alert of kind with data as its webhook body.
func NewAlert(kind alertlog.Kind, id string, firedAt time.Time, data any) (alertlog.Alert, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return alertlog.Alert{}, err
	}
	body, err := json.Marshal(Envelope{Type: kind, Timestamp: firedAt.UTC(), Data: raw})
	if err != nil {
		return alertlog.Alert{}, err
	}
	return alertlog.Alert{ID: id, Kind: kind, Time: firedAt, Payload: body}, nil
}

// Message is an alert rendered for each kind of channel.
type Message struct {
	// ID is the idempotency key: the webhook-id, and the email's Message-ID.
	ID string
	// Body is the webhook body.
	Body []byte
	// Subject and Text are the email.
	Subject, Text string
	// Short is the text message.
	Short string
}

// Render turns a recorded alert into what its channels send.
func Render(a alertlog.Alert) (Message, error) {
	m := Message{ID: a.ID, Body: a.Payload}
	var env Envelope
	if err := json.Unmarshal(a.Payload, &env); err != nil {
		return m, fmt.Errorf("alert %s has a malformed payload: %w", a.ID, err)
	}
	switch env.Type {
	case alertlog.KindCapThreshold:
		var d CapThreshold
		if err := json.Unmarshal(env.Data, &d); err != nil {
			return m, fmt.Errorf("alert %s has malformed data: %w", a.ID, err)
		}
		d.render(&m)
	case alertlog.KindKeyExpiring:
		var d KeyExpiring
		if err := json.Unmarshal(env.Data, &d); err != nil {
			return m, fmt.Errorf("alert %s has malformed data: %w", a.ID, err)
		}
		d.render(&m)
	default:
		return m, fmt.Errorf("alert %s is of unknown type %q", a.ID, env.Type)
	}
	return m, nil
}

func (d *CapThreshold) what() string {
	if d.Scope == "Organization" {
		return "The organization"
	}
	return fmt.Sprintf("Project %s", d.Project)
}

func (d *CapThreshold) render(m *Message) {
	used := fmt.Sprintf("%d%%", d.Percent)
	var amounts []string
	if d.Limit != "" {
		amounts = append(amounts, strings.TrimSpace(fmt.Sprintf("%s of %s %s", d.Spent, d.Limit, d.Currency)))
	}
	if d.TokenLimit > 0 {
		amounts = append(amounts, fmt.Sprintf("%d of %d tokens", d.Tokens, d.TokenLimit))
	}
	m.Subject = fmt.Sprintf("[Platform Hub] %s reached %d%% of spending cap %s", d.what(), d.Threshold, d.Cap.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "%s has used %s of its spending cap %s/%s (%s) in the billing cycle %s to %s.\n\n",
		d.what(), used, d.Cap.Namespace, d.Cap.Name, strings.Join(amounts, "; "),
		d.CycleStart.UTC().Format(time.RFC3339), d.CycleEnd.UTC().Format(time.RFC3339))
	switch {
	case d.Percent >= 100 && d.Enforcement == "Hard":
		b.WriteString("The cap is Hard: API calls are refused until the cap is raised or the next cycle starts.\n")
	case d.ProjectedExhaustion != nil:
		fmt.Fprintf(&b, "At the rate of the last 24 hours it reaches 100%% at %s.\n", d.ProjectedExhaustion.UTC().Format(time.RFC3339))
		if d.Enforcement == "Hard" {
			b.WriteString("The cap is Hard: API calls will be refused then.\n")
		}
	}
	if d.UnpricedCalls > 0 {
		fmt.Fprintf(&b, "%d calls of this cycle used models with no price and are not in the spend above: "+
			"add their prices, or a default price for their service, to the Organization's spec.pricing.\n", d.UnpricedCalls)
	}
	if d.DashboardURL != "" {
		fmt.Fprintf(&b, "\nUsage: %s\n", d.DashboardURL)
	}
	m.Text = b.String()
	m.Short = fmt.Sprintf("Platform Hub: %s at %s of spending cap %s (%s).", d.what(), used, d.Cap.Name, strings.Join(amounts, "; "))
	if d.UnpricedCalls > 0 {
		m.Short += fmt.Sprintf(" %d unpriced calls not counted.", d.UnpricedCalls)
	}
	if d.DashboardURL != "" {
		m.Short += " " + d.DashboardURL
	}
}

func (d *KeyExpiring) render(m *Message) {
	days := "1 day"
	if d.DaysLeft != 1 {
		days = fmt.Sprintf("%d days", d.DaysLeft)
	}
	m.Subject = fmt.Sprintf("[Platform Hub] API key %s of project %s expires in %s", d.Key.Name, d.Project, days)
	var b strings.Builder
	fmt.Fprintf(&b, "The API key %s/%s (key ID %s", d.Key.Namespace, d.Key.Name, d.KeyID)
	if d.Owner != "" {
		fmt.Fprintf(&b, ", owner %s", d.Owner)
	}
	fmt.Fprintf(&b, ") expires at %s. Calls with it are refused from then on.\n\n", d.ExpiresAt.UTC().Format(time.RFC3339))
	b.WriteString("Rotate it before then (change spec.rotation.trigger), or create a new key.\n")
	if d.DashboardURL != "" {
		fmt.Fprintf(&b, "\nKeys: %s\n", d.DashboardURL)
	}
	m.Text = b.String()
	m.Short = fmt.Sprintf("Platform Hub: API key %s of project %s expires in %s (%s).", d.Key.Name, d.Project, days,
		d.ExpiresAt.UTC().Format(time.RFC3339))
}
