package server

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"

	ctrl "sigs.k8s.io/controller-runtime"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/dashboard"
	"github.com/minimax/platform-hub/internal/serving"
)

// The dashboard reads hub resources from the server's cache, and the OIDC
// client secret from the hub's namespace (the server's Role there); its own
// sign-in writes only Member status (invitations, above). Everything else
// it does as the signed-in member, by impersonation: the member's name, the
// group of every authenticated user, the sign-in's methods (for the MFA
// policy) and the component (for the audit log). Members made at a first
// single sign-on are created as access.Provisioner, which may do that only.
// +kubebuilder:rbac:groups=hub.minimax.io,resources=members;spendingcaps;apikeys;organizations;projects,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=users;groups,verbs=impersonate
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=userextras/hub.minimax.io/amr;userextras/hub.minimax.io/via,verbs=impersonate

// setupDashboard serves the dashboard on every replica when it has an
// address: its accounts and sessions live in the server's database.
func setupDashboard(mgr ctrl.Manager, stores *Stores, s *Server, opts Options) error {
	if opts.DashboardAddr == "" {
		return nil
	}
	store, err := accounts.New(context.Background(), stores.DB, accounts.Options{SealingKey: opts.DashboardSealingKey, Clock: opts.Clock})
	if err != nil {
		return fmt.Errorf("the dashboard's accounts: %w", err)
	}
	stores.Accounts = store // for retention
	url := cmp.Or(opts.DashboardURL, opts.PublicURL)
	hubNamespace := cmp.Or(opts.HubNamespace, hubv1.DefaultHubNamespace)
	d, err := dashboard.New(dashboard.Options{Accounts: store, Reader: mgr.GetClient(), Informers: mgr.GetCache(), Invitations: s.Invitations, Config: mgr.GetConfig(),
		Clock: opts.Clock, Insecure: opts.CertDir == "", TrustForwardedFor: opts.TrustForwardedFor, SealingKey: opts.DashboardSealingKey,
		Secrets: mgr.GetAPIReader(), HubNamespace: hubNamespace, URL: url, Log: ctrl.Log.WithName("dashboard")})
	if err != nil {
		return err
	}
	return mgr.Add(&dashboardRunnable{handler: d, addr: opts.DashboardAddr, certDir: opts.CertDir})
}

// dashboardRunnable serves the dashboard until the manager stops.
type dashboardRunnable struct {
	handler http.Handler
	addr    string
	certDir string
}

func (d *dashboardRunnable) NeedLeaderElection() bool { return false }

func (d *dashboardRunnable) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", d.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", d.addr, err)
	}
	ctrl.Log.WithName("dashboard").Info("Serving the dashboard", "address", l.Addr().String(), "tls", d.certDir != "")
	return serving.Serve(ctx, serving.NewServer(d.handler, serving.Dashboard), l, d.certDir)
}
