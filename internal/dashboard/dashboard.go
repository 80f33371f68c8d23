// Package dashboard is the hub's web UI: people sign in (a password and a
// second factor, or an invitation that creates their account), and move
// through the modules their role may open in a left sidebar. Single sign-on
// with the Organization's OpenID Connect provider signs people in too, and
// can create their Member on first sign-in (sso.go).
//
// Pages are rendered on the server with html/template and read without
// JavaScript; htmx and uPlot, vendored from the npm registry at pinned
// versions (hack/vendor-web-assets.sh) and embedded, are the progressive
// layer. The Content-Security-Policy allows scripts and styles from the
// dashboard's own origin only, and no framing.
//
// Who a person is comes from their Member (role, disabled) and their
// account in the server's database (package accounts): a session ends when
// the member is disabled, removed, or changes role, and after the
// Organization's idle time (spec.security.sessionTimeout).
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/invitations"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Options configure a Server.
type Options struct {
	// Accounts keeps passwords, second factors and sessions.
	Accounts accounts.Store
	// Reader reads hub resources (Members, the Organization, Projects,
	// APIKeys, SpendingCaps), from an informer cache.
	Reader client.Reader
	// Informers is the cache behind Reader (a manager's, which may start
	// later): the overview keeps its key figures from the APIKey informer.
	Informers cache.Informers
	// Invitations checks and accepts invitation links, which create
	// accounts.
	Invitations *invitations.Handler
	// Config is the dashboard's own access to kube-apiserver: it may
	// impersonate members (and read), nothing else. Every write, and every
	// read of the management API, is made as the signed-in member.
	Config *rest.Config
	// Clock tells the time; nil means the real clock.
	Clock clock.PassiveClock
	// Insecure leaves the Secure attribute off the session cookie: for a
	// dashboard on loopback HTTP (hub dev) only.
	Insecure bool
	// Issuer names the hub in authenticator apps ("Platform Hub").
	Issuer string
	// TrustForwardedFor takes clients' addresses (for throttling) from the
	// last X-Forwarded-For entry: only behind one proxy, which appends it.
	TrustForwardedFor bool
	// SealingKey (accounts.SealingKeyLength bytes, the accounts store's)
	// seals the state of a single sign-on under way into a cookie.
	SealingKey []byte
	// Secrets reads the OIDC client secret (get only, not from a cache)
	// in HubNamespace, the hub's own namespace.
	Secrets      client.Reader
	HubNamespace string
	// URL is where people reach the dashboard (https://hub.example.com),
	// for the redirect URI registered with the identity provider; empty
	// means the request's own host.
	URL string
	// SSOClient calls the identity provider; nil means a client with a
	// 10-second timeout that trusts the system's roots (SSL_CERT_FILE
	// adds a private CA).
	SSOClient *http.Client
	Log       logr.Logger
}

// Server serves the dashboard.
type Server struct {
	o       Options
	actAs   *actAs
	modules []module
	pages   map[string]*template.Template
	handler http.Handler
	// sealer seals single sign-on state; providers caches OIDC discovery.
	sealer    *accounts.Sealer
	providers providers
	// keyFigures are the overview's figures of every key.
	keyFigures *keyFigures
}

// Sign-in throttling: failures allowed per account and per client address
// in a window (OWASP's authentication guidance: throttle by both).
const (
	accountFailures = 10
	addressFailures = 50
	failureWindow   = 15 * time.Minute
	// defaultIdle is the idle time without an Organization (its default).
	defaultIdle = 8 * time.Hour
)

// New returns the dashboard's server.
func New(o Options) (*Server, error) {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Issuer == "" {
		o.Issuer = "Platform Hub"
	}
	s := &Server{o: o, pages: map[string]*template.Template{}, actAs: newActAs(o.Config)}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	var err error
	if s.sealer, err = accounts.NewSealer(o.SealingKey); err != nil {
		return nil, fmt.Errorf("the dashboard's sealing key: %w", err)
	}
	if o.Informers == nil {
		return nil, errors.New("the dashboard needs Options.Informers, the cache behind Options.Reader")
	}
	// Before the cache starts this only adds the informer; after, it waits
	// for the informer's first list.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s.keyFigures, err = watchKeyFigures(ctx, o.Informers); err != nil {
		return nil, fmt.Errorf("watching the keys for the overview: %w", err)
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	mux.HandleFunc("GET /signin", s.signInPage)
	mux.HandleFunc("POST /signin", s.signIn)
	mux.HandleFunc("GET "+ssoPath, s.startSSO)
	mux.HandleFunc("GET "+ssoCallbackPath, s.ssoCallback)
	mux.HandleFunc("GET /signin/code", s.guarded(s.codePage, accounts.StageSecondFactor))
	mux.HandleFunc("POST /signin/code", s.guarded(s.code, accounts.StageSecondFactor))
	// Members the policy covers set up a second factor before anything
	// else; others may from their account.
	mux.HandleFunc("GET /account/second-factor", s.guarded(s.enrolPage, accounts.StageEnrol, ""))
	mux.HandleFunc("POST /account/second-factor", s.guarded(s.enrol, accounts.StageEnrol, ""))
	mux.HandleFunc("POST /signin/passkey", s.guarded(s.passkeySignIn, accounts.StageSecondFactor))
	mux.HandleFunc("POST /account/passkeys", s.guarded(s.addPasskey, accounts.StageEnrol, ""))
	mux.HandleFunc("POST /signout", s.signOut)
	mux.HandleFunc("GET /account", s.guarded(s.accountPage, ""))
	mux.HandleFunc("POST /account/time-zone", s.guarded(s.setTimeZone, ""))
	mux.HandleFunc("GET "+invitations.AcceptPath, s.invitationPage)
	mux.HandleFunc("POST "+invitations.AcceptPath, s.acceptInvitation)
	s.modules = modules
	for _, m := range s.modules {
		mux.HandleFunc("GET "+m.Pattern, s.module(m, m.page))
	}
	keys := s.moduleNamed("API Keys")
	mux.HandleFunc("POST /keys", s.module(keys, (*Server).generateKey))
	mux.HandleFunc("GET /keys/{namespace}/{name}/revoke", s.module(keys, (*Server).revokePage))
	mux.HandleFunc("POST /keys/{namespace}/{name}/revoke", s.module(keys, (*Server).revoke))
	mux.HandleFunc("GET /keys/{namespace}/{name}/rotate", s.module(keys, (*Server).rotatePage))
	mux.HandleFunc("POST /keys/{namespace}/{name}/rotate", s.module(keys, (*Server).rotate))
	mux.HandleFunc("POST /keys/{namespace}/{name}/retire", s.module(keys, (*Server).retire))
	mux.HandleFunc("GET /keys/{namespace}/{name}", s.module(keys, (*Server).keyPage))
	mux.HandleFunc("GET /keys/{namespace}/{name}/calls.csv", s.module(keys, (*Server).callsCSV))
	mux.HandleFunc("GET /overview/usage", s.module(s.moduleNamed("Overview"), (*Server).overviewUsage))
	usage := s.moduleNamed("Usage")
	mux.HandleFunc("GET /usage.csv", s.module(usage, (*Server).usageCSV))
	mux.HandleFunc("GET /usage/calls", s.module(usage, (*Server).usageCalls))
	protect := http.NewCrossOriginProtection()
	protect.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusForbidden, "This request came from another site, so the hub refused it. Use the dashboard's own pages.")
	}))
	s.handler = securityHeaders(protect.Handler(mux))
	return s, nil
}

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// organization reads the Organization; nil when there is none yet.
func (s *Server) organization(ctx context.Context) *hubv1.Organization {
	org := &hubv1.Organization{}
	if err := s.o.Reader.Get(ctx, client.ObjectKey{Name: hubv1.OrganizationName}, org); err != nil {
		return nil
	}
	return org
}

// idleTimeout is the Organization's session idle time.
func (s *Server) idleTimeout(ctx context.Context) time.Duration {
	if org := s.organization(ctx); org != nil && org.Spec.Security.SessionTimeout != nil {
		return org.Spec.Security.SessionTimeout.Duration
	}
	return defaultIdle
}

// mfaRequired says whether the Organization's policy asks a member of the
// role for a second factor.
func (s *Server) mfaRequired(ctx context.Context, role hubv1.Role) bool {
	org := s.organization(ctx)
	return org != nil && org.Spec.Security.MFA.Covers(role)
}
