package server

import (
	"context"
	"fmt"
	"net"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/go-logr/logr"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/egress"
	"github.com/minimax/platform-hub/internal/invitations"
	"github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/notify"
	"github.com/minimax/platform-hub/internal/objects"
	"github.com/minimax/platform-hub/internal/perclient"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/server/reconcilers"
	"github.com/minimax/platform-hub/internal/serving"
	"github.com/minimax/platform-hub/internal/sqldb"
	"github.com/minimax/platform-hub/internal/usage"
)

// Options configure the server role.
type Options struct {
	// StoreURL is "sqlite:<path>" or a postgres:// URL.
	StoreURL string
	// ListenAddr serves the API (ingest).
	ListenAddr string
	// CertDir, when set, holds tls.crt and tls.key and the API is served
	// over TLS; empty serves plain HTTP (loopback, tests, `hub dev`).
	CertDir string
	// MetricsAddr serves Prometheus metrics; "0" disables them.
	MetricsAddr string
	// SecureMetrics serves metrics over HTTPS behind Kubernetes
	// authentication and authorization (the in-cluster default).
	SecureMetrics bool
	// ProbeAddr serves /healthz and /readyz; "0" disables them.
	ProbeAddr string
	// EventRetention and RollupRetention bound how long raw events and
	// hourly rollups are kept.
	EventRetention, RollupRetention time.Duration
	// LeaderElection elects one replica for the work done once (retention,
	// and the controllers of the server role to come).
	LeaderElection          bool
	LeaderElectionNamespace string
	// SkipControllerNameValidation lets a process build the role more than
	// once (tests restart `hub dev` in-process).
	SkipControllerNameValidation bool
	// StatusInterval is how often usage goes to Project, APIKey and
	// SpendingCap status; default 10s.
	StatusInterval time.Duration
	// StatusWritesPerSecond bounds those writes; default 5.
	StatusWritesPerSecond int
	// HubNamespace is the hub's own namespace, whose SpendingCaps cap the
	// whole organization; default hub-system.
	HubNamespace string
	// Clock tells the time to the cap evaluation; nil means the real clock.
	Clock clock.PassiveClock
	// CapResync is the longest a SpendingCap goes without evaluation;
	// default 1m.
	CapResync time.Duration
	// ConfigSecret is the name of the hub's configuration Secret (SMTP and
	// SMS settings) in HubNamespace; default hub-config.
	ConfigSecret string
	// Egress decides where NotificationChannel webhooks may be delivered,
	// checked again on every connection; nil allows public https
	// receivers only. Give the manager the same policy.
	Egress *egress.Policy
	// DashboardURL is the dashboard's base URL, for the links in alerts.
	DashboardURL string
	// TrustForwardedFor takes the address of invitation links' visitors,
	// which rate limits go by, from X-Forwarded-For: set it only behind a
	// proxy that overwrites the header.
	TrustForwardedFor bool
	// AlertRetention is how long alert history and the audit log are kept;
	// default 12 months.
	AlertRetention time.Duration
	// AlertPoll is how often the alert outbox is read for due retries;
	// default 1s.
	AlertPoll time.Duration
	// AlertRetryFor is how long a failing alert delivery is retried before
	// it is dead-lettered; default 24h.
	AlertRetryFor time.Duration
	// AlertMinBackoff is the first wait between delivery attempts; default
	// 10s, doubling up to an hour.
	AlertMinBackoff time.Duration
	// PublicURL is the base of invitation links: the dashboard, or an
	// address where people reach this server. Without it no invitation is
	// sent.
	PublicURL string
	// InvitationTTL is how long an invitation link works; default 7 days.
	InvitationTTL time.Duration
	// DashboardAddr serves the dashboard (over TLS with CertDir's
	// certificate); empty does not. Invitation links then belong to it:
	// set PublicURL to where people reach it.
	DashboardAddr string
	// DashboardSealingKey (32 bytes) seals the second-factor secrets of
	// dashboard accounts; needed with DashboardAddr.
	DashboardSealingKey []byte
}

// DefaultAlertRetention keeps alert history for 12 months.
const DefaultAlertRetention = 366 * 24 * time.Hour

// Stores are the server's stores, each of one concern, over one database
// (which the server owns).
type Stores struct {
	DB      *sqldb.DB
	Usage   usage.Store
	Alerts  alertlog.Store
	Audit   auditlog.Store
	Objects objects.Store
	// Accounts is the dashboard's accounts and sessions, when the server
	// serves the dashboard (its sealing key comes with that).
	Accounts accounts.Store
}

// OpenStores opens the database a URL names ("sqlite:<path>" or a
// postgres:// URL) and every store in it, creating their tables if needed.
func OpenStores(ctx context.Context, url string) (*Stores, error) {
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	s, err := NewStores(ctx, db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// NewStores returns every store in db, creating their tables if needed.
func NewStores(ctx context.Context, db *sqldb.DB) (*Stores, error) {
	s := &Stores{DB: db}
	var err error
	if s.Usage, err = usage.New(ctx, db); err != nil {
		return nil, err
	}
	if s.Alerts, err = alertlog.New(ctx, db); err != nil {
		return nil, err
	}
	if s.Audit, err = auditlog.New(ctx, db); err != nil {
		return nil, err
	}
	if s.Objects, err = objects.New(ctx, db); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Stores) Close() error { return s.DB.Close() }

// NewManager builds the server role's manager: the HTTP API as a runnable on
// every replica, the Organization watched for prices, and retention.
func NewManager(ctx context.Context, cfg *rest.Config, opts Options) (ctrl.Manager, usage.Store, error) {
	stores, err := OpenStores(ctx, opts.StoreURL)
	if err != nil {
		return nil, nil, err
	}
	store := stores.Usage
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme.New(),
		Metrics:                       metrics.ServerOptions(opts.MetricsAddr, opts.SecureMetrics),
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              "platform-hub-server.hub.minimax.io",
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &opts.SkipControllerNameValidation},
	})
	if err != nil {
		_ = stores.Close()
		return nil, nil, err
	}
	s := &Server{
		Store:   store,
		Alerts:  stores.Alerts,
		Audit:   stores.Audit,
		Auth:    &Authorizer{Client: mgr.GetClient(), Clock: clock.RealClock{}},
		Metrics: metrics.NewUsageMetrics(ctrlmetrics.Registry),
		Log:     ctrl.Log.WithName("server"),
		Objects: stores.Objects,
	}
	prices := &reconcilers.PriceReconciler{Client: mgr.GetClient(), Sink: s}
	if err := prices.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	if err := mgr.Add(&httpRunnable{server: s, addr: opts.ListenAddr, certDir: opts.CertDir, prices: prices}); err != nil {
		return nil, nil, err
	}
	if opts.AlertRetention == 0 {
		opts.AlertRetention = DefaultAlertRetention
	}
	// Thresholds fire once per cycle because the cycle's alerts are still
	// in the store; pending deliveries need theirs until given up.
	if least := max(31*24*time.Hour, opts.AlertRetryFor); opts.AlertRetention < least {
		_ = stores.Close()
		return nil, nil, fmt.Errorf("--alert-retention must be at least %v (a billing cycle, and --alert-retry-for), not %v",
			least, opts.AlertRetention)
	}
	if err := mgr.Add(&retention{stores: stores, client: mgr.GetClient(), events: opts.EventRetention, rollups: opts.RollupRetention,
		alerts: opts.AlertRetention, audit: opts.AlertRetention}); err != nil {
		return nil, nil, err
	}
	if err := mgr.Add(&StatusWriter{
		Client: mgr.GetClient(), Store: store, Prices: s.prices.Load, Clock: clock.RealClock{},
		Log: ctrl.Log.WithName("usage-status"), Interval: opts.StatusInterval, MaxWritesPerSecond: opts.StatusWritesPerSecond,
	}); err != nil {
		return nil, nil, err
	}
	if err := (&reconcilers.KeyOwnerReconciler{Client: mgr.GetClient(), Store: store}).SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	if err := setupCaps(mgr, s, opts); err != nil {
		return nil, nil, err
	}
	if err := setupDashboard(mgr, stores, s, opts); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, nil, err
	}
	return mgr, store, nil
}

var (
	_ CapTracker              = (*reconcilers.SpendingCapReconciler)(nil)
	_ reconcilers.PriceSource = (*Server)(nil)
	_ reconcilers.PriceSink   = (*Server)(nil)
)

// setupCaps runs the SpendingCap evaluation, driven by the server's ingest,
// and the alerts: the outbox, its dispatcher and the key expiry warnings.
func setupCaps(mgr ctrl.Manager, s *Server, opts Options) error {
	if opts.HubNamespace == "" {
		opts.HubNamespace = hubv1.DefaultHubNamespace
	}
	if opts.ConfigSecret == "" {
		opts.ConfigSecret = notify.ConfigSecretName
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	dispatcher := &notify.Dispatcher{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: s.Alerts, Clock: opts.Clock,
		Log:  ctrl.Log.WithName("alerts"),
		Poll: opts.AlertPoll, RetryFor: opts.AlertRetryFor, MinBackoff: opts.AlertMinBackoff,
		Sender: &notify.Sender{Reader: mgr.GetAPIReader(), Egress: opts.Egress,
			ConfigSecret: client.ObjectKey{Namespace: opts.HubNamespace, Name: opts.ConfigSecret}},
	}
	if err := mgr.Add(dispatcher); err != nil {
		return err
	}
	if opts.PublicURL == "" {
		opts.PublicURL = opts.DashboardURL
	}
	if err := (&reconcilers.InvitationReconciler{Client: mgr.GetClient(), Sender: dispatcher.Sender, Clock: opts.Clock,
		PublicURL: opts.PublicURL, TTL: opts.InvitationTTL}).SetupWithManager(mgr); err != nil {
		return err
	}
	invites := &invitations.Handler{Reader: mgr.GetAPIReader(), Client: mgr.GetClient(), Clock: opts.Clock,
		PerClient: perclient.NewLimiter(1, 10, 0, opts.TrustForwardedFor)}
	s.Invitations = invites
	outbox := &notify.Outbox{Client: mgr.GetClient(), Store: s.Alerts, HubNamespace: opts.HubNamespace, Wake: dispatcher.Wake}
	expiry := &reconcilers.KeyExpiryReconciler{Client: mgr.GetClient(), Outbox: outbox, Clock: opts.Clock, DashboardURL: opts.DashboardURL}
	if err := expiry.SetupWithManager(mgr); err != nil {
		return err
	}
	r := &reconcilers.SpendingCapReconciler{
		Client: mgr.GetClient(), Store: s.Store, Prices: s, Clock: opts.Clock, HubNamespace: opts.HubNamespace,
		Log: ctrl.Log.WithName("spendingcap"), Resync: opts.CapResync, StatusInterval: opts.StatusInterval,
		Outbox: outbox, DashboardURL: opts.DashboardURL,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	s.Caps = r
	return nil
}

// What the server role needs beyond its reconcilers: the status writer's
// reads and writes, and authenticating and authorizing callers.
// +kubebuilder:rbac:groups=hub.minimax.io,resources=apikeys;organizations,verbs=get;list;watch
// +kubebuilder:rbac:groups=hub.minimax.io,resources=projects/status;apikeys/status,verbs=patch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// httpRunnable serves the API on every replica until the manager stops.
type httpRunnable struct {
	server  *Server
	addr    string
	certDir string
	prices  *reconcilers.PriceReconciler
}

func (h *httpRunnable) NeedLeaderElection() bool { return false }

func (h *httpRunnable) Start(ctx context.Context) error {
	// Events are priced as they are stored: load the prices before taking
	// any (the caches are synced when runnables start).
	if _, err := h.prices.Reconcile(ctx, reconcile.Request{}); err != nil {
		return fmt.Errorf("loading the price list: %w", err)
	}
	l, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", h.addr, err)
	}
	h.server.Log.Info("Serving the usage API", "address", l.Addr().String(), "tls", h.certDir != "")
	return serving.Serve(ctx, serving.NewServer(h.server.Handler(), serving.API), l, h.certDir)
}

// retention rolls up the days that are over and prunes the store, hourly,
// on the leader only. Days are rolled up in UTC and in the Organization's
// billing zone, read at each pass.
type retention struct {
	stores                         *Stores
	client                         client.Reader
	events, rollups, alerts, audit time.Duration
}

// billingZone is the Organization's billing time zone: nil when there is
// no Organization, or it names no zone (admission refuses that). It fails
// when the Organization cannot be read: the pass then leaves the days as
// they are, rather than drop the zone's days and roll them all up again
// at the next.
func (r *retention) billingZone(ctx context.Context) (*time.Location, error) {
	org := &hubv1.Organization{}
	if err := r.client.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if loc, err := time.LoadLocation(org.Spec.Billing.TimeZone); err == nil {
		return loc, nil
	}
	return nil, nil // not a zone: admission refuses it
}

// rollUp rolls up the days that are over, in UTC and the billing zone.
func (r *retention) rollUp(ctx context.Context, now time.Time, log logr.Logger) {
	zone, err := r.billingZone(ctx)
	if err != nil {
		log.Error(err, "Reading the Organization's billing zone; usage days are rolled up at the next pass")
		return
	}
	if err := r.stores.Usage.RollUpDays(ctx, now, zone); err != nil && ctx.Err() == nil {
		log.Error(err, "Rolling up usage by day")
	}
}

func (r *retention) NeedLeaderElection() bool { return true }

func (r *retention) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("retention")
	ticker := time.NewTicker(time.Hour)
	defer ticker.Stop()
	for {
		now := time.Now()
		r.rollUp(ctx, now, log)
		if err := r.stores.Usage.Prune(ctx, now.Add(-r.events), now.Add(-r.rollups)); err != nil && ctx.Err() == nil {
			log.Error(err, "Pruning usage")
		}
		if err := r.stores.Alerts.PruneAlerts(ctx, now.Add(-r.alerts)); err != nil && ctx.Err() == nil {
			log.Error(err, "Pruning alert history")
		}
		if err := r.stores.Audit.PruneAudit(ctx, now.Add(-r.audit)); err != nil && ctx.Err() == nil {
			log.Error(err, "Pruning the audit log")
		}
		if r.stores.Accounts != nil {
			if err := r.stores.Accounts.Prune(ctx, now); err != nil && ctx.Err() == nil {
				log.Error(err, "Pruning dashboard sessions")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

var _ manager.LeaderElectionRunnable = &retention{}
