// Command hub is Platform Hub's one binary. Its subcommands are the roles it
// runs: `manager` (controllers and admission webhooks), `server` (the usage
// store), `apiserver` (the management API), `gateway` (the reference
// gateway) and `dev` (the whole hub with a local control plane, for a
// laptop).
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	// The IANA time-zone database, so billing time zones resolve in a
	// distroless image that has none.
	_ "time/tzdata"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/apiserver"
	"github.com/minimax/platform-hub/internal/dev"
	"github.com/minimax/platform-hub/internal/egress"
	"github.com/minimax/platform-hub/internal/gateway"
	"github.com/minimax/platform-hub/internal/keys"
	"github.com/minimax/platform-hub/internal/notify"
	"github.com/minimax/platform-hub/internal/operator"
	"github.com/minimax/platform-hub/internal/server"
	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/webhooks"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	zapOpts := zap.Options{}
	root := &cobra.Command{
		Use:           "hub",
		Short:         "Platform Hub: API keys, usage, spending caps and teams as Kubernetes resources",
		SilenceUsage:  true,
		SilenceErrors: false,
		PersistentPreRun: func(*cobra.Command, []string) {
			// Every log line, client-go's included, passes through key
			// redaction: whatever an error quotes, no key reaches a log.
			logger := zap.New(zap.UseFlagOptions(&zapOpts), zap.WriteTo(keys.RedactingWriter(os.Stderr)))
			ctrl.SetLogger(logger)
			klog.SetLogger(logger)
		},
	}
	goFlags := flag.NewFlagSet("zap", flag.ExitOnError)
	zapOpts.BindFlags(goFlags)
	root.PersistentFlags().AddGoFlagSet(goFlags)

	root.AddCommand(newManagerCommand(), newServerCommand(), newAPIServerCommand(), newGatewayCommand(), newDevCommand(), newVersionCommand())
	return root
}

func newManagerCommand() *cobra.Command {
	opts := operator.Options{Egress: &egress.Policy{}}
	opts.ServerAccess.ServiceAccount = types.NamespacedName{Namespace: hubv1.DefaultHubNamespace, Name: "hub-server"}
	opts.ManagerAccess.ServiceAccount = types.NamespacedName{Namespace: hubv1.DefaultHubNamespace, Name: "hub-manager"}
	opts.APIServerAccess.ServiceAccount = types.NamespacedName{Namespace: hubv1.DefaultHubNamespace, Name: "hub-apiserver"}
	var certDir string
	var webhookPort int
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the controllers and admission webhooks (in a cluster)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			opts.Webhook = webhook.Options{Port: webhookPort, CertDir: certDir}
			mgr, err := operator.NewManager(ctrl.GetConfigOrDie(), opts)
			if err != nil {
				return err
			}
			ctrl.Log.WithName("setup").Info("Starting manager", "version", version)
			return mgr.Start(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8443", `Address of the metrics endpoint; "0" disables it.`)
	f.BoolVar(&opts.SecureMetrics, "metrics-secure", true, "Serve metrics over HTTPS behind Kubernetes authentication and authorization.")
	f.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	f.BoolVar(&opts.LeaderElection, "leader-elect", true, "Elect one replica to run the controllers.")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election lease (default: the pod's namespace).")
	f.StringVar(&opts.HubNamespace, "hub-namespace", hubv1.DefaultHubNamespace, "The hub's own namespace: SpendingCaps there cap the whole organization.")
	f.StringVar(&certDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory holding the webhook serving tls.crt and tls.key.")
	f.IntVar(&webhookPort, "webhook-port", 9443, "Port of the admission webhook server.")
	f.Var(&allowlistFlag{opts.Egress}, webhookAllowFlag, webhookAllowUsage)
	f.Var(&namespacedNameFlag{&opts.ServerAccess.ServiceAccount}, "server-service-account",
		`The usage server's ServiceAccount (namespace/name), granted get on Secrets in each project namespace; "" grants nothing.`)
	f.StringVar(&opts.ServerAccess.ClusterRole, "server-secret-reader-role", "hub-server-secret-reader",
		"ClusterRole (get on Secrets) bound to the usage server in each project namespace.")
	f.Var(&namespacedNameFlag{&opts.ManagerAccess.ServiceAccount}, "manager-service-account",
		`This manager's ServiceAccount (namespace/name), granted the key Secrets' permissions in each project namespace; "" grants nothing.`)
	f.StringVar(&opts.ManagerAccess.ClusterRole, "manager-secrets-role", "hub-manager-secrets",
		"ClusterRole (the key Secrets' permissions) bound to the manager in each project namespace.")
	f.Var(&namespacedNameFlag{&opts.APIServerAccess.ServiceAccount}, "apiserver-service-account",
		`The management API's ServiceAccount (namespace/name), granted get on Secrets in each project namespace; "" grants nothing.`)
	f.StringVar(&opts.APIServerAccess.ClusterRole, "apiserver-secret-reader-role", "hub-apiserver-secret-reader",
		"ClusterRole (get on Secrets) bound to the management API in each project namespace.")
	f.StringSliceVar(&opts.ReservedProjectNames, "reserved-project-names", webhooks.DefaultReservedProjectNames,
		"Names no Project may take (its namespace's name), as shell patterns such as kube-* or *-system; replaces the default list.")
	f.StringVar(&opts.Audit.ServerURL, "audit-server-url", "https://hub-server.hub-system.svc", `Usage server that keeps the audit log of changes to hub resources; "" keeps none.`)
	f.StringVar(&opts.Audit.ServerCAFile, "audit-server-ca-file", "/etc/hub/server-ca/ca.crt", `CA that signed the usage server's certificate; "" uses the system roots.`)
	f.StringVar(&opts.Audit.TokenFile, "audit-token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "ServiceAccount token shown to the usage server.")
	f.StringVar(&opts.Audit.SpoolDir, "audit-spool-dir", "/var/lib/hub-manager/audit-spool", "Where audit entries wait while the usage server is unreachable.")
	opts.Audit.SpoolLimit = 192 << 20
	f.Var(&bytesFlag{&opts.Audit.SpoolLimit}, "audit-spool-limit", "Bound of the audit spool (e.g. 192Mi; 0: none): past it, changes to hub resources are refused until the usage server takes the backlog. Keep it below the spool volume's size.")
	return cmd
}

func newServerCommand() *cobra.Command {
	opts := server.Options{Egress: &egress.Policy{}}
	var sealingKeyFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the usage server: ingest from gateways, the usage store, usage metrics (in a cluster)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx := ctrl.SetupSignalHandler()
			if opts.DashboardAddr != "" {
				var err error
				if opts.DashboardSealingKey, err = readSealingKey(sealingKeyFile); err != nil {
					return err
				}
			}
			mgr, store, err := server.NewManager(ctx, ctrl.GetConfigOrDie(), opts)
			if err != nil {
				return err
			}
			defer func() { _ = store.Close() }()
			ctrl.Log.WithName("setup").Info("Starting server", "version", version)
			return mgr.Start(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.StoreURL, "store", "sqlite:/var/lib/hub/usage.db", "Usage store: sqlite:<path> (one replica) or a postgres:// URL (several).")
	f.StringVar(&opts.ListenAddr, "listen-address", ":8443", "Address of the usage API (ingest).")
	f.StringVar(&opts.CertDir, "tls-cert-dir", "/tmp/hub-server/serving-certs", `Directory with tls.crt and tls.key for the usage API; "" serves plain HTTP.`)
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8444", `Address of the metrics endpoint; "0" disables it.`)
	f.BoolVar(&opts.SecureMetrics, "metrics-secure", true, "Serve metrics over HTTPS behind Kubernetes authentication and authorization.")
	f.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	f.DurationVar(&opts.EventRetention, "event-retention", 90*24*time.Hour, "How long raw usage events are kept.")
	f.DurationVar(&opts.RollupRetention, "rollup-retention", 400*24*time.Hour, "How long hourly and daily usage rollups are kept (at least 13 months for year-on-year reports).")
	f.StringVar(&opts.HubNamespace, "hub-namespace", hubv1.DefaultHubNamespace, "The hub's own namespace: its SpendingCaps cap the whole organization.")
	f.DurationVar(&opts.StatusInterval, "status-interval", 10*time.Second, "How often usage goes to Project and APIKey status.")
	f.IntVar(&opts.StatusWritesPerSecond, "status-writes-per-second", 5, "Average bound on those status writes, over all projects and keys.")
	f.Var(&allowlistFlag{opts.Egress}, webhookAllowFlag, webhookAllowUsage)
	f.StringVar(&opts.ConfigSecret, "config-secret", notify.ConfigSecretName, "Name of the hub's configuration Secret (SMTP server, SMS provider) in --hub-namespace.")
	f.StringVar(&opts.DashboardURL, "dashboard-url", "", "Base URL of the dashboard, for the links in alerts (none when empty).")
	f.StringVar(&opts.PublicURL, "public-url", "", "Base URL of invitation links, where people reach this server or the dashboard (default: --dashboard-url); without either, no invitation is sent.")
	f.DurationVar(&opts.InvitationTTL, "invitation-ttl", 7*24*time.Hour, "How long an invitation link works.")
	f.StringVar(&opts.DashboardAddr, "dashboard-listen-address", "", `Address of the dashboard, served with --tls-cert-dir's certificate; "" serves none. Set --public-url to where people reach it.`)
	f.StringVar(&sealingKeyFile, "dashboard-sealing-key-file", "/etc/hub/dashboard/sealing-key", "File with the 32-byte key (raw, or base64) that seals dashboard accounts' second-factor secrets.")
	f.BoolVar(&opts.TrustForwardedFor, "trust-forwarded-for", false, "Take invitation visitors' addresses (for per-client rate limits) from the last X-Forwarded-For entry; only behind one proxy, which appends it.")
	f.DurationVar(&opts.AlertRetention, "alert-retention", server.DefaultAlertRetention, "How long alert history is kept.")
	f.DurationVar(&opts.AlertRetryFor, "alert-retry-for", notify.DefaultRetryFor, "How long a failing alert delivery is retried before it is dead-lettered.")
	f.BoolVar(&opts.LeaderElection, "leader-elect", true, "Elect one replica for work done once (retention, usage on status, alert delivery).")
	f.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election lease (default: the pod's namespace).")
	return cmd
}

// readSealingKey reads the dashboard's sealing key: 32 bytes, raw or in
// base64 (as `head -c 32 /dev/urandom | base64` writes it).
func readSealingKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the dashboard's sealing key: %w", err)
	}
	if len(raw) == accounts.SealingKeyLength {
		return raw, nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != accounts.SealingKeyLength {
		return nil, fmt.Errorf("%s must hold %d bytes, raw or in base64 (head -c 32 /dev/urandom | base64)", path, accounts.SealingKeyLength)
	}
	return key, nil
}

func newAPIServerCommand() *cobra.Command {
	opts := apiserver.Options{}
	var serverURL, serverCAFile, tokenFile string
	cmd := &cobra.Command{
		Use:   "apiserver",
		Short: "Run the management API (management.hub.minimax.io), an aggregated API server (in a cluster)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			httpClient, err := serverclient.HTTPClient(serverCAFile)
			if err != nil {
				return err
			}
			opts.Usage = &apiserver.UsageClient{URL: serverURL, HTTP: httpClient, Token: serverclient.FileToken(tokenFile)}
			srv, err := apiserver.New(opts)
			if err != nil {
				return err
			}
			ctrl.Log.WithName("setup").Info("Starting the management API", "version", version, "address", opts.ListenAddr)
			return srv.Run(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ListenAddr, "listen-address", ":8443", "Address of the HTTPS API that the APIService points at.")
	f.StringVar(&opts.CertFile, "tls-cert-file", "/etc/hub/apiserver-tls/tls.crt", "Serving certificate; it must name the Service (hub-apiserver.hub-system.svc).")
	f.StringVar(&opts.KeyFile, "tls-private-key-file", "/etc/hub/apiserver-tls/tls.key", "Key of the serving certificate.")
	f.StringVar(&opts.Kubeconfig, "kubeconfig", "", `Kubeconfig reaching kube-apiserver; "" means in-cluster.`)
	f.StringVar(&serverURL, "server-url", "https://hub-server.hub-system.svc", "Base URL of the usage server.")
	f.BoolVar(&opts.TrustForwardedFor, "trust-forwarded-for", false, "Take the addresses of callers with a hub key (for the organization's IP allowlist) from the last X-Forwarded-For entry; only behind one proxy, which appends it.")
	f.StringVar(&serverCAFile, "server-ca-file", "/etc/hub/server-ca/ca.crt", `CA that signed the usage server's certificate; "" uses the system roots.`)
	f.StringVar(&tokenFile, "token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "ServiceAccount token shown to the usage server.")
	return cmd
}

func newGatewayCommand() *cobra.Command {
	opts := gateway.Options{}
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the reference gateway: key auth, scope, IP allowlist, caps, metering (in a cluster)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx := ctrl.SetupSignalHandler()
			mgr, _, err := gateway.NewManager(ctx, ctrl.GetConfigOrDie(), opts)
			if err != nil {
				return err
			}
			ctrl.Log.WithName("setup").Info("Starting gateway", "version", version, "upstream", opts.Upstream)
			return mgr.Start(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ListenAddr, "listen-address", ":8080", "Address of the OpenAI-compatible API.")
	f.StringVar(&opts.Upstream, "upstream", "https://api.minimax.io", "Base URL of the upstream model API.")
	f.StringVar(&opts.RoutesFile, "routes", "", "YAML file with the route table of the platform's API (default: the built-in table; see docs/gateway.md).")
	f.StringVar(&opts.UpstreamKeyFile, "upstream-key-file", "", "File with the platform's key for the upstream (sent instead of callers' keys).")
	f.StringVar(&opts.HubNamespace, "hub-namespace", hubv1.DefaultHubNamespace, "The hub's own namespace: its SpendingCaps cap the whole organization.")
	f.StringVar(&opts.ServerURL, "server-url", "https://hub-server.hub-system.svc", "Base URL of the usage server.")
	f.StringVar(&opts.ServerCAFile, "server-ca-file", "/etc/hub/server-ca/ca.crt", `CA that signed the usage server's certificate; "" uses the system roots.`)
	f.StringVar(&opts.TokenFile, "token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "ServiceAccount token shown to the usage server.")
	f.StringVar(&opts.SpoolDir, "spool-dir", "/var/lib/hub-gateway/spool", "Directory for usage events waiting for the usage server.")
	opts.SpoolLimit = 768 << 20
	f.Var(&bytesFlag{&opts.SpoolLimit}, "spool-limit", "Bound of the usage spool (e.g. 768Mi; 0: none): past it, calls are refused with 503 until the usage server takes the backlog. Keep it below the spool volume's size.")
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8082", `Address of the metrics endpoint; "0" disables it.`)
	f.BoolVar(&opts.SecureMetrics, "metrics-secure", true, "Serve metrics over HTTPS behind Kubernetes authentication and authorization.")
	f.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	f.BoolVar(&opts.TrustForwardedFor, "trust-forwarded-for", false, "Take client addresses from the last X-Forwarded-For entry (only behind one load balancer, which appends it).")
	return cmd
}

func newDevCommand() *cobra.Command {
	opts := dev.Options{}
	samples := true
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole hub on this machine with a local control plane",
		Long: `Run etcd, kube-apiserver and kube-controller-manager locally, install the hub's
CRDs and webhooks, run the manager, and apply the samples on first start.
State is kept in --state-dir across restarts; Ctrl-C stops everything.

The samples are recorded as 'kubectl apply' records what it applies, so
applying your own Organization (named default) replaces the sample's spec.
To start from nothing, start a new state directory with --samples=false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			opts.SkipSamples = !samples
			return dev.Run(ctrl.SetupSignalHandler(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.StateDir, "state-dir", ".hub", "Directory for the cluster's data, the kubeconfig and logs.")
	f.StringVar(&opts.BinDir, "bin-dir", "", "Directory holding etcd, kube-apiserver and kube-controller-manager (default: found automatically).")
	f.StringVar(&opts.GatewayAddr, "gateway-address", "127.0.0.1:8080", "Address of the gateway (the OpenAI-compatible API, in front of the demo model).")
	f.StringVar(&opts.MetricsAddr, "metrics-bind-address", "127.0.0.1:8081", "Address of the manager's metrics endpoint.")
	f.StringVar(&opts.GatewayMetricsAddr, "gateway-metrics-address", "127.0.0.1:8082", "Address of the gateway's metrics endpoint.")
	f.StringVar(&opts.ServerAddr, "server-address", "127.0.0.1:8090", "Address of the usage server (its API and invitation links).")
	f.StringVar(&opts.ServerMetricsAddr, "server-metrics-address", "127.0.0.1:8091", "Address of the usage server's metrics endpoint.")
	f.StringVar(&opts.APIServerAddr, "apiserver-address", "127.0.0.1:8443", "Address of the management API (reached through kube-apiserver's aggregator).")
	f.StringVar(&opts.DashboardAddr, "dashboard-address", "127.0.0.1:8088", "Address of the dashboard (plain HTTP on loopback).")
	f.StringVar(&opts.OwnerEmail, "owner-email", "owner@example.com", "Email of the first Owner, whose account-setup link is printed until used.")
	f.BoolVar(&samples, "samples", true, "Apply the samples in config/samples on the first start of a state directory.")
	return cmd
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version)
		},
	}
}

const (
	webhookAllowFlag  = "webhook-allow"
	webhookAllowUsage = "Internal destinations NotificationChannel webhooks may reach besides public ones: comma-separated " +
		"CIDR ranges, addresses and exact host names (e.g. 10.20.0.0/16,alerts.monitoring.svc). " +
		"Give the manager (admission) and the server (delivery) the same list."
)

// allowlistFlag reads --webhook-allow into an egress policy; a bad entry
// fails at start, naming it.
type allowlistFlag struct{ policy *egress.Policy }

func (f *allowlistFlag) Set(list string) error { return f.policy.ParseAllowlist(list) }
func (f *allowlistFlag) Type() string          { return "list" }
func (f *allowlistFlag) String() string {
	if f.policy == nil {
		return ""
	}
	entries := make([]string, 0, len(f.policy.Allow)+len(f.policy.AllowHosts))
	for _, p := range f.policy.Allow {
		entries = append(entries, p.String())
	}
	return strings.Join(append(entries, f.policy.AllowHosts...), ",")
}

// bytesFlag reads a size as a Kubernetes quantity (768Mi, 1G, 1048576).
type bytesFlag struct{ n *int64 }

func (f *bytesFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a size such as 768Mi: %w", s, err)
	}
	if q.Sign() < 0 {
		return fmt.Errorf("%q: a size cannot be negative", s)
	}
	*f.n = q.Value()
	return nil
}
func (f *bytesFlag) Type() string   { return "bytes" }
func (f *bytesFlag) String() string { return resource.NewQuantity(*f.n, resource.BinarySI).String() }

// namespacedNameFlag reads namespace/name.
type namespacedNameFlag struct{ n *types.NamespacedName }

func (f *namespacedNameFlag) Set(s string) error {
	if s == "" {
		*f.n = types.NamespacedName{}
		return nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("%q is not namespace/name, such as hub-system/hub-server", s)
	}
	*f.n = types.NamespacedName{Namespace: ns, Name: name}
	return nil
}
func (f *namespacedNameFlag) Type() string { return "namespace/name" }
func (f *namespacedNameFlag) String() string {
	if f.n == nil || f.n.Name == "" {
		return ""
	}
	return f.n.String()
}
