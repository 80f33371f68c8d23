package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/shipping"
	"github.com/minimax/platform-hub/internal/usage"
)

// Shipper sends usage events to the server's ingest API (see package
// shipping): in batches, at least once, spooled on disk while the server is
// unreachable; events the server refuses as invalid are quarantined in
// SpoolDir/quarantine.
type Shipper = shipping.Shipper[usage.Event]

// ShipperOptions configure NewShipper.
type ShipperOptions struct {
	// URL is the ingest endpoint, https://<server>/v1/usage/events.
	URL    string
	Client *http.Client
	// Token returns the bearer token to send (the projected ServiceAccount
	// token, re-read as the kubelet rotates it).
	Token func() (string, error)
	// SpoolDir keeps events the server could not take yet.
	SpoolDir string
	// FlushInterval bounds how long an event waits: default 250ms, so that
	// a call that exhausts a Hard cap reaches its evaluation at once.
	FlushInterval time.Duration
	// MemoryEvents is how many events may wait in memory; default 100,000.
	MemoryEvents int
	// MaxSpoolBytes bounds the spool; past it the gateway refuses calls.
	// Zero means no bound.
	MaxSpoolBytes int64
	Clock         clock.WithTicker
	Log           logr.Logger
	// Acks, when set, is told of every batch the server stored, with the
	// Hard cap totals of its answer, and of events it refused (with none).
	Acks Acknowledger
}

// Acknowledger is told which events the server has taken (Budgets, which
// then stops counting them as pending).
type Acknowledger interface {
	Acknowledged(events []usage.Event, caps []usage.CapTotals)
}

// NewShipper returns the shipper of usage events.
func NewShipper(opts ShipperOptions) *Shipper {
	sender := &usageSender{url: opts.URL, client: opts.Client, token: opts.Token, acks: opts.Acks}
	return shipping.New[usage.Event](sender, shipping.Options{
		Kind: "usage", SpoolDir: opts.SpoolDir, BatchSize: 1000, FlushInterval: opts.FlushInterval,
		MemorySize: opts.MemoryEvents, MaxSpoolBytes: opts.MaxSpoolBytes, Clock: opts.Clock, Log: opts.Log,
		MetricsPrefix: "hub_gateway_usage",
	})
}

// usageSender posts batches of events to the ingest API.
type usageSender struct {
	url    string
	client *http.Client
	token  func() (string, error)
	acks   Acknowledger
}

// Send implements shipping.Sender.
func (u *usageSender) Send(ctx context.Context, events []usage.Event) (map[int]string, error) {
	resp, err := serverclient.Post(ctx, u.client, u.url, u.token, map[string][]usage.Event{"events": events})
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer ingestReply
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&answer)
	if resp.StatusCode == http.StatusOK {
		if u.acks != nil {
			u.acks.Acknowledged(events, answer.Caps)
		}
		return nil, nil
	}
	refused := resp.StatusCode == http.StatusUnprocessableEntity || resp.StatusCode == http.StatusBadRequest
	if bad := answer.refused(len(events)); refused && len(bad) > 0 {
		if u.acks != nil {
			gone := make([]usage.Event, 0, len(bad))
			for i := range bad {
				gone = append(gone, events[i])
			}
			u.acks.Acknowledged(gone, nil) // never to be stored: no longer pending
		}
		return bad, nil
	}
	msg := ""
	if answer.Error != nil {
		msg = answer.Error.Message
	}
	return nil, fmt.Errorf("the usage server answered %s: %s", resp.Status, msg)
}

// ingestReply is the body of the server's answer.
type ingestReply struct {
	Caps  []usage.CapTotals `json:"caps"`
	Error *struct {
		Message string `json:"message"`
		Index   *int   `json:"index"`
		Invalid []struct {
			Index   int    `json:"index"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"invalid"`
	} `json:"error"`
}

// refused lists the events of a batch of n that the reply refuses, by index,
// with the reason.
func (r *ingestReply) refused(n int) map[int]string {
	e := r.Error
	if e == nil {
		return nil
	}
	out := map[int]string{}
	for _, bad := range e.Invalid {
		if bad.Index >= 0 && bad.Index < n {
			out[bad.Index] = bad.Field + ": " + bad.Message
		}
	}
	// A server from before the list names only the first.
	if len(out) == 0 && e.Index != nil && *e.Index >= 0 && *e.Index < n {
		out[*e.Index] = e.Message
	}
	return out
}
