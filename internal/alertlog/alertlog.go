// Package alertlog is the alert outbox and history: every alert the hub
// fires (a spending cap's threshold, an API key nearing its expiry), with a
// delivery per channel, in the server's database. One transaction records
// an alert with every delivery it needs. Alerts are recorded before anything
// is sent (insert, then deliver), so a crash never loses one; the alert ID is
// the idempotency key, so an alert recorded twice is recorded once.
package alertlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/minimax/platform-hub/internal/sqldb"
)

// Kind says what an alert is about.
type Kind string

// Alert kinds.
const (
	// KindCapThreshold is a spending cap crossing one of its thresholds.
	KindCapThreshold Kind = "spendingcap.threshold"
	// KindKeyExpiring is an API key nearing its expiry.
	KindKeyExpiring Kind = "apikey.expiring"
)

// DeliveryState is where one delivery of an alert is.
type DeliveryState string

// Delivery states.
const (
	// DeliveryPending is waiting for its next attempt.
	DeliveryPending DeliveryState = "Pending"
	// DeliveryDelivered was accepted by the channel.
	DeliveryDelivered DeliveryState = "Delivered"
	// DeliveryDead failed for longer than the retry period, or was refused
	// for good (a webhook answered 410 Gone): the dead letter.
	DeliveryDead DeliveryState = "Dead"
)

// Alert is one notification, as recorded in the outbox and the history.
type Alert struct {
	// ID is the idempotency key (for a cap threshold: cap UID, cycle start
	// and threshold); webhooks carry it as webhook-id.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Time is when the alert fired.
	Time time.Time `json:"time"`
	// Namespace, Name and SourceUID name the object the alert is about.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	SourceUID string `json:"sourceUID"`
	// Project is the project concerned; empty for the organization.
	Project string `json:"project,omitempty"`
	// CycleStart is the billing cycle of a cap alert.
	CycleStart time.Time `json:"cycleStart,omitzero"`
	// Threshold is the percentage of a cap alert, or the days left of a key
	// expiry warning.
	Threshold int32 `json:"threshold"`
	// Payload is the body sent to webhooks, byte for byte on every attempt.
	Payload json.RawMessage `json:"payload"`
	// Deliveries are the alert's deliveries, one per channel.
	Deliveries []Delivery `json:"deliveries"`
}

// Delivery is an alert's delivery to one channel.
type Delivery struct {
	AlertID string `json:"-"`
	// Channel is the NotificationChannel, as namespace/name.
	Channel string        `json:"channel"`
	State   DeliveryState `json:"state"`
	// Attempts counts the attempts so far.
	Attempts int `json:"attempts"`
	// NextAttempt is when a pending delivery is tried next.
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// LastError says why the last attempt failed.
	LastError string `json:"lastError,omitempty"`
	// Done lists the recipients already served, for a channel that sends
	// to each of several (SMS): a retry goes only to the others.
	Done []string `json:"done,omitempty"`
	// Updated is when the delivery last changed.
	Updated time.Time `json:"updated"`
}

// PendingDelivery is a delivery to attempt, with its alert.
type PendingDelivery struct {
	Delivery
	Alert Alert
}

// Path is where the usage server lists the alert history (GET).
const Path = "/v1/alerts"

// Filter selects alerts from the history. Empty fields match all.
type Filter struct {
	// From and To bound the firing time [From, To); zero means unbounded.
	From, To  time.Time
	Project   string
	Kind      Kind
	SourceUID string
	// CycleStart, when set, selects the alerts of one billing cycle.
	CycleStart time.Time
	// Limit caps the number of alerts (the newest are kept); zero means
	// no cap.
	Limit int
	// After, when set, reads a page instead: the alerts after it in
	// (time, ID) order, at most Limit of them, oldest first. The zero
	// Cursor starts from the first alert.
	After *sqldb.Cursor
}

// Store is the alert outbox and history.
type Store interface {
	// RecordAlerts records the alerts whose IDs are new, each with a
	// pending delivery to each of its Deliveries' channels, in one
	// transaction. It returns the alerts that were new.
	RecordAlerts(ctx context.Context, alerts []Alert) ([]Alert, error)

	// Alerts lists alerts with their deliveries, oldest first.
	Alerts(ctx context.Context, f Filter) ([]Alert, error)

	// PendingDeliveries lists every pending delivery with its alert, by
	// channel and then in the order the alerts fired.
	PendingDeliveries(ctx context.Context) ([]PendingDelivery, error)

	// UpdateDelivery records the outcome of an attempt on a pending
	// delivery. It fails with ErrDeliveryMoved when the delivery is no
	// longer pending (another dispatcher recorded it).
	UpdateDelivery(ctx context.Context, d Delivery) error

	// PruneAlerts deletes alerts that fired before before, with their
	// deliveries.
	PruneAlerts(ctx context.Context, before time.Time) error
}

// sqlStore implements Store in the hub's database.
type sqlStore struct {
	db *sqldb.DB
	d  sqldb.Dialect
}

// New returns the alert outbox and history in db, creating its tables if needed.
func New(ctx context.Context, db *sqldb.DB) (Store, error) {
	if err := db.Migrate(ctx, "alerts", schema, nil); err != nil {
		return nil, err
	}
	return &sqlStore{db: db, d: db.D}, nil
}

var schema = []string{
	`CREATE TABLE IF NOT EXISTS alerts (
		id TEXT PRIMARY KEY,
		ts BIGINT NOT NULL,
		kind TEXT NOT NULL,
		namespace TEXT NOT NULL,
		name TEXT NOT NULL,
		source_uid TEXT NOT NULL,
		project TEXT NOT NULL,
		cycle_start BIGINT NOT NULL,
		threshold INTEGER NOT NULL,
		payload TEXT NOT NULL)` + "%TABLE_OPTIONS%",
	`CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts)`,
	// A cap's alerts of a cycle are read at every evaluation.
	`CREATE INDEX IF NOT EXISTS alerts_source ON alerts (source_uid, cycle_start)`,
	`CREATE TABLE IF NOT EXISTS alert_deliveries (
		alert_id TEXT NOT NULL,
		channel TEXT NOT NULL,
		state TEXT NOT NULL,
		attempts INTEGER NOT NULL,
		next_attempt BIGINT NOT NULL,
		last_error TEXT NOT NULL,
		done TEXT NOT NULL,
		updated BIGINT NOT NULL,
		PRIMARY KEY (alert_id, channel))` + "%TABLE_OPTIONS%",
	`CREATE INDEX IF NOT EXISTS alert_deliveries_state ON alert_deliveries (state, channel)`,
}

const deliveryColumns = "d.alert_id, d.channel, d.state, d.attempts, d.next_attempt, d.last_error, d.done, d.updated"

const alertColumns = "a.id, a.ts, a.kind, a.namespace, a.name, a.source_uid, a.project, a.cycle_start, a.threshold, a.payload"

// RecordAlerts implements Store.
func (s *sqlStore) RecordAlerts(ctx context.Context, alerts []Alert) ([]Alert, error) {
	if len(alerts) == 0 {
		return nil, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("recording alerts: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.Placeholder
	insertAlert := fmt.Sprintf(`INSERT INTO alerts (id, ts, kind, namespace, name, source_uid, project, cycle_start, threshold, payload)
		VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING`,
		p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10))
	insertDelivery := fmt.Sprintf(`INSERT INTO alert_deliveries (alert_id, channel, state, attempts, next_attempt, last_error, done, updated)
		VALUES (%s, %s, %s, 0, %s, '', '', %s) ON CONFLICT (alert_id, channel) DO NOTHING`, p(1), p(2), p(3), p(4), p(5))
	var recorded []Alert
	for _, a := range alerts {
		res, err := tx.ExecContext(ctx, insertAlert, a.ID, a.Time.UnixMicro(), string(a.Kind), a.Namespace, a.Name,
			a.SourceUID, a.Project, unixMicroOrZero(a.CycleStart), a.Threshold, string(a.Payload))
		if err != nil {
			return nil, fmt.Errorf("recording alert %s: %w", a.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			continue // recorded before: its deliveries are under way or done
		}
		a.Deliveries = slices.Clone(a.Deliveries)
		for i, d := range a.Deliveries {
			if _, err := tx.ExecContext(ctx, insertDelivery, a.ID, d.Channel, string(DeliveryPending),
				a.Time.UnixMicro(), a.Time.UnixMicro()); err != nil {
				return nil, fmt.Errorf("recording alert %s for %s: %w", a.ID, d.Channel, err)
			}
			a.Deliveries[i] = Delivery{AlertID: a.ID, Channel: d.Channel, State: DeliveryPending, NextAttempt: a.Time, Updated: a.Time}
		}
		recorded = append(recorded, a)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("recording alerts: %w", err)
	}
	return recorded, nil
}

func unixMicroOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func timeOrZero(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// Alerts implements Store.
func (s *sqlStore) Alerts(ctx context.Context, f Filter) ([]Alert, error) {
	where, args := s.alertWhere(f)
	limit := ""
	if f.Limit > 0 {
		limit = fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	// The newest are kept under a limit; the answer is oldest first. A page
	// is the oldest after its cursor.
	newest := " FROM alerts a" + where + " ORDER BY a.ts DESC, a.threshold DESC" + limit
	q := "SELECT * FROM (SELECT " + alertColumns + newest + ") a ORDER BY a.ts, a.threshold"
	if f.After != nil {
		newest = " FROM alerts a" + where + " ORDER BY a.ts, a.id" + limit
		q = "SELECT " + alertColumns + newest
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing alerts: %w", err)
	}
	var alerts []Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			_ = rows.Close()
			return nil, err
		}
		alerts = append(alerts, a)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("listing alerts: %w", err)
	}
	if len(alerts) == 0 {
		return alerts, nil
	}
	return alerts, s.attachDeliveries(ctx, alerts, "SELECT a.id"+newest, args)
}

// alertWhere turns a filter into a WHERE clause over alerts aliased a.
func (s *sqlStore) alertWhere(f Filter) (string, []any) {
	c := &sqldb.Conds{D: s.d}
	c.TimeRange("a.ts", f.From, f.To)
	c.Equal("a.project", f.Project)
	c.Equal("a.kind", string(f.Kind))
	c.Equal("a.source_uid", f.SourceUID)
	if !f.CycleStart.IsZero() {
		c.Add("a.cycle_start = ?", f.CycleStart.UnixMicro())
	}
	if f.After != nil {
		c.After("a.ts", "a.id", *f.After)
	}
	return c.SQL(), c.Args
}

// attachDeliveries reads the deliveries of alerts, which the query selected
// (of alert IDs) picks, in one query.
func (s *sqlStore) attachDeliveries(ctx context.Context, alerts []Alert, selected string, args []any) error {
	index := make(map[string]int, len(alerts))
	for i := range alerts {
		index[alerts[i].ID] = i
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+deliveryColumns+
		" FROM alert_deliveries d WHERE d.alert_id IN ("+selected+") ORDER BY d.channel", args...)
	if err != nil {
		return fmt.Errorf("listing alert deliveries: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return err
		}
		if i, ok := index[d.AlertID]; ok {
			alerts[i].Deliveries = append(alerts[i].Deliveries, d)
		}
	}
	return rows.Err()
}

func scanAlert(rows *sql.Rows) (Alert, error) {
	var a Alert
	var ts, cycle int64
	var kind, payload string
	if err := rows.Scan(&a.ID, &ts, &kind, &a.Namespace, &a.Name, &a.SourceUID, &a.Project, &cycle, &a.Threshold, &payload); err != nil {
		return a, fmt.Errorf("reading an alert: %w", err)
	}
	a.Time, a.CycleStart, a.Kind, a.Payload = time.UnixMicro(ts).UTC(), timeOrZero(cycle), Kind(kind), json.RawMessage(payload)
	return a, nil
}

func scanDelivery(rows *sql.Rows) (Delivery, error) {
	var d Delivery
	var state, done string
	var next, updated int64
	if err := rows.Scan(&d.AlertID, &d.Channel, &state, &d.Attempts, &next, &d.LastError, &done, &updated); err != nil {
		return d, fmt.Errorf("reading an alert delivery: %w", err)
	}
	d.State, d.Updated, d.Done = DeliveryState(state), time.UnixMicro(updated).UTC(), splitDone(done)
	if d.State == DeliveryPending {
		d.NextAttempt = time.UnixMicro(next).UTC()
	}
	return d, nil
}

func splitDone(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// PendingDeliveries implements Store.
func (s *sqlStore) PendingDeliveries(ctx context.Context) ([]PendingDelivery, error) {
	q := "SELECT " + deliveryColumns + ", " + alertColumns +
		" FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.state = " + s.d.Placeholder(1) +
		" ORDER BY d.channel, a.ts, a.threshold"
	rows, err := s.db.QueryContext(ctx, q, string(DeliveryPending))
	if err != nil {
		return nil, fmt.Errorf("listing pending alert deliveries: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []PendingDelivery
	for rows.Next() {
		var p PendingDelivery
		var state, done, kind, payload string
		var next, updated, ts, cycle int64
		if err := rows.Scan(&p.AlertID, &p.Channel, &state, &p.Attempts, &next, &p.LastError, &done, &updated,
			&p.Alert.ID, &ts, &kind, &p.Alert.Namespace, &p.Alert.Name, &p.Alert.SourceUID, &p.Alert.Project,
			&cycle, &p.Alert.Threshold, &payload); err != nil {
			return nil, fmt.Errorf("reading a pending alert delivery: %w", err)
		}
		p.State, p.NextAttempt, p.Updated = DeliveryState(state), time.UnixMicro(next).UTC(), time.UnixMicro(updated).UTC()
		p.Done = splitDone(done)
		p.Alert.Time, p.Alert.CycleStart = time.UnixMicro(ts).UTC(), timeOrZero(cycle)
		p.Alert.Kind, p.Alert.Payload = Kind(kind), json.RawMessage(payload)
		out = append(out, p)
	}
	return out, rows.Err()
}

// UpdateDelivery implements Store.
func (s *sqlStore) UpdateDelivery(ctx context.Context, d Delivery) error {
	p := s.d.Placeholder
	// Only a pending delivery at the attempt count before this attempt is
	// updated: a dispatcher that lost the lease mid-attempt cannot turn a
	// delivery someone else finished back into a pending one.
	res, err := s.db.ExecContext(ctx, fmt.Sprintf(`UPDATE alert_deliveries SET state = %s, attempts = %s, next_attempt = %s,
		last_error = %s, done = %s, updated = %s WHERE alert_id = %s AND channel = %s AND state = %s AND attempts <= %s`,
		p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10)),
		string(d.State), d.Attempts, unixMicroOrZero(d.NextAttempt), d.LastError, strings.Join(d.Done, ","), d.Updated.UnixMicro(),
		d.AlertID, d.Channel, string(DeliveryPending), d.Attempts)
	if err != nil {
		return fmt.Errorf("recording the delivery of alert %s to %s: %w", d.AlertID, d.Channel, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("recording the delivery of alert %s to %s: %w", d.AlertID, d.Channel, ErrDeliveryMoved)
	}
	return nil
}

// ErrDeliveryMoved means a delivery was no longer pending at the attempt
// count an update expected: another dispatcher recorded it.
var ErrDeliveryMoved = errors.New("the delivery was updated by someone else")

// PruneAlerts implements Store.
func (s *sqlStore) PruneAlerts(ctx context.Context, before time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pruning alerts: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	p := s.d.Placeholder(1)
	if _, err := tx.ExecContext(ctx, "DELETE FROM alert_deliveries WHERE alert_id IN (SELECT id FROM alerts WHERE ts < "+p+")",
		before.UnixMicro()); err != nil {
		return fmt.Errorf("pruning alert deliveries: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM alerts WHERE ts < "+p, before.UnixMicro()); err != nil {
		return fmt.Errorf("pruning alerts: %w", err)
	}
	return tx.Commit()
}
