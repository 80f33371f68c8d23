// Package operator assembles the `manager` role: the controller-runtime
// manager with the hub's reconcilers and admission webhooks. `hub manager`,
// `hub dev` and the envtest suites all build it here, so they run the same
// wiring.
package operator

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/controllers"
	"github.com/minimax/platform-hub/internal/audit"
	"github.com/minimax/platform-hub/internal/egress"
	hubmetrics "github.com/minimax/platform-hub/internal/metrics"
	"github.com/minimax/platform-hub/internal/scheme"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/serving"
	"github.com/minimax/platform-hub/webhooks"
)

// Options configure the manager.
type Options struct {
	// MetricsAddr is where Prometheus metrics are served; "0" disables them.
	MetricsAddr string
	// SecureMetrics serves metrics over HTTPS behind Kubernetes authentication
	// and authorization (the in-cluster default). Off, they are plain HTTP,
	// which suits a loopback address on a laptop.
	SecureMetrics bool
	// ProbeAddr is where /healthz and /readyz are served; "0" disables them.
	ProbeAddr string
	// LeaderElection makes replicas elect one to run the controllers; every
	// replica serves webhooks.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; empty means the pod's namespace.
	LeaderElectionNamespace string
	// Webhook configures the admission webhook server.
	Webhook webhook.Options
	// Clock tells the time; tests pass a fake one. Nil means the real clock.
	Clock clock.PassiveClock
	// HubNamespace is the hub's own namespace, where SpendingCaps cap the
	// whole organization; default hubv1.DefaultHubNamespace.
	HubNamespace string
	// Egress decides where NotificationChannel webhooks may point; nil
	// allows public https receivers only. `hub dev` allows http on loopback.
	Egress *egress.Policy
	// ServerAccess grants the usage server get on Secrets in each project
	// namespace (and nowhere else); empty grants nothing.
	ServerAccess controllers.SecretAccess
	// ManagerAccess grants the manager's own ServiceAccount the key
	// Secrets' permissions in each project namespace (its ClusterRole has
	// none); empty grants nothing, for a manager that runs with broader
	// credentials (tests, hub dev).
	ManagerAccess controllers.SecretAccess
	// APIServerAccess grants the management API's ServiceAccount get on
	// Secrets in each project namespace; empty grants nothing.
	APIServerAccess controllers.SecretAccess
	// ReservedProjectNames are path.Match patterns of names no Project may
	// take; nil means webhooks.DefaultReservedProjectNames.
	ReservedProjectNames []string
	// SkipControllerNameValidation lets a process build more than one manager
	// (controller names are otherwise unique per process); tests use it.
	SkipControllerNameValidation bool
	// NewClient, when set, builds the manager's client; tests wrap the default
	// one to inject faults.
	NewClient client.NewClientFunc
	// Audit sends the audit log to the usage server; without a server URL
	// no audit log is kept.
	Audit AuditOptions
}

// AuditOptions say where audit entries go.
type AuditOptions struct {
	// ServerURL is the usage server's base URL.
	ServerURL string
	// ServerCAFile verifies its certificate; empty uses the system roots.
	ServerCAFile string
	// TokenFile is the ServiceAccount token shown to it; Token, when set,
	// is used instead (tests, `hub dev`).
	TokenFile string
	Token     func() (string, error)
	// SpoolDir keeps entries while the server is unreachable.
	SpoolDir string
	// SpoolLimit bounds the spool in bytes; past it, changes to hub
	// resources are refused until the server has taken the backlog. Zero
	// means no bound.
	SpoolLimit int64
}

// NewManager builds a manager with every controller and webhook registered.
func NewManager(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	// HTTP/2 stays off on the servers we expose: it has had denial-of-service
	// flaws (CVE-2023-44487, CVE-2023-39325) and the API server does not need it.
	disableHTTP2 := func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
	opts.Webhook.TLSOpts = append(opts.Webhook.TLSOpts, disableHTTP2)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 hubmetrics.ServerOptions(opts.MetricsAddr, opts.SecureMetrics),
		HealthProbeBindAddress:  opts.ProbeAddr,
		WebhookServer:           boundedWebhooks{webhook.NewServer(opts.Webhook)},
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "platform-hub-manager.hub.minimax.io",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// Leaving at once on shutdown lets a new leader take over without
		// waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &opts.SkipControllerNameValidation},
		Cache: cache.Options{
			// The hub never reads managedFields; dropping them from the cache
			// roughly halves the memory of each cached object.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// Only the namespaces and Secrets the hub created are cached, so
				// memory does not grow with the cluster's other objects.
				&corev1.Namespace{}: {Label: hasLabel(hubv1.ProjectLabel)},
				// Secrets are cached per project namespace (controllers.SecretCaches).
				// Only the RBAC objects the hub generates (controllers/access).
				&rbacv1.ClusterRole{}:        {Label: hasLabel(hubv1.AccessLabel)},
				&rbacv1.ClusterRoleBinding{}: {Label: hasLabel(hubv1.AccessLabel)},
				&rbacv1.RoleBinding{}:        {Label: hasLabel(hubv1.AccessLabel)},
			},
		},
		// PushSecrets are unstructured (see controllers/apikey_delivery.go);
		// read them from the cache too.
		Client:    client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		NewClient: opts.NewClient,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}

	if err := controllers.SetupWithManager(mgr, controllers.Options{Clock: opts.Clock, ServerAccess: opts.ServerAccess, ManagerAccess: opts.ManagerAccess,
		APIServerAccess: opts.APIServerAccess}); err != nil {
		return nil, err
	}
	hubNamespace := opts.HubNamespace
	if hubNamespace == "" {
		hubNamespace = hubv1.DefaultHubNamespace
	}
	committer, err := newCommitter(mgr, opts.Audit)
	if err != nil {
		return nil, err
	}
	if err := webhooks.SetupWithManager(mgr, webhooks.Options{HubNamespace: hubNamespace, Egress: opts.Egress, ReservedProjectNames: opts.ReservedProjectNames,
		Stamper: committer}); err != nil { // audit entries carry the real time, whatever clock the controllers use
		return nil, fmt.Errorf("setting up webhooks: %w", err)
	}
	// Key metrics come from the leader only, so that replicas do not export
	// the same series twice; they are registered while it leads.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		collector := &hubmetrics.KeyCollector{Reader: mgr.GetClient()}
		if err := ctrlmetrics.Registry.Register(collector); err != nil {
			return fmt.Errorf("registering API key metrics: %w", err)
		}
		<-ctx.Done()
		ctrlmetrics.Registry.Unregister(collector)
		return nil
	})); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhooks", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	return mgr, nil
}

func hasLabel(key string) labels.Selector {
	req, err := labels.NewRequirement(key, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}

// newCommitter builds what turns admitted changes, once stored, into audit
// entries and Members' activity; both run on every replica (each serves
// webhooks). Members' activity is kept from the real time, whatever clock
// the other controllers use.
func newCommitter(mgr ctrl.Manager, opts AuditOptions) (*audit.Committer, error) {
	activity := controllers.NewMemberActivityReconciler(mgr.GetClient(), clock.RealClock{})
	if err := activity.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the member activity controller: %w", err)
	}
	recorder, err := newRecorder(mgr, opts)
	if err != nil {
		return nil, err
	}
	committer := &audit.Committer{Activity: activity, Kinds: webhooks.AuditedKinds(), Cache: mgr.GetCache(), Log: ctrl.Log.WithName("audit")}
	committer.RegisterMetrics(ctrlmetrics.Registry)
	if recorder != nil {
		committer.Sink = recorder
	}
	return committer, mgr.Add(committer)
}

// newRecorder builds the recorder of the audit log; nil when no server URL
// is configured.
func newRecorder(mgr ctrl.Manager, opts AuditOptions) (*audit.Recorder, error) {
	if opts.ServerURL == "" {
		ctrl.Log.WithName("setup").Info("No usage server URL: changes to hub resources are not audited")
		return nil, nil
	}
	httpClient, err := serverclient.HTTPClient(opts.ServerCAFile)
	if err != nil {
		return nil, err
	}
	token := opts.Token
	if token == nil {
		token = serverclient.FileToken(opts.TokenFile)
	}
	r := &audit.Recorder{URL: strings.TrimSuffix(opts.ServerURL, "/"), Client: httpClient, Token: token,
		SpoolDir: opts.SpoolDir, MaxSpoolBytes: opts.SpoolLimit, Log: ctrl.Log.WithName("audit"), Metrics: ctrlmetrics.Registry}
	if err := mgr.Add(r); err != nil {
		return nil, err
	}
	return r, nil
}

// boundedWebhooks gives every admission webhook a body and an answer
// deadline: controller-runtime's webhook server bounds only headers and
// idle connections.
type boundedWebhooks struct{ webhook.Server }

func (s boundedWebhooks) Register(path string, hook http.Handler) {
	s.Server.Register(path, serving.WithDeadlines(hook, serving.Webhooks))
}
