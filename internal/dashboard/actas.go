package dashboard

import (
	"errors"
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
	"github.com/minimax/platform-hub/internal/identity"
	"github.com/minimax/platform-hub/internal/scheme"
)

// ViaDashboard is identity.ViaExtra's value on the dashboard's writes: the
// audit log shows the change came through it.
const ViaDashboard = "dashboard"

// errNoWrites: the dashboard was started without credentials to act with.
var errNoWrites = errors.New("the dashboard has no API server credentials to act for members (Options.Config)")

// actAs makes clients of kube-apiserver that act as the signed-in member,
// by impersonation: the API server's RBAC, the hub's admission rules (the
// MFA policy among them, which reads the sign-in's amr) and the audit log
// see the member, never the dashboard. Reads of the management API go
// the same way, so that a member sees what their role lets them see.
type actAs struct {
	config *rest.Config
	scheme *runtime.Scheme

	once   sync.Once
	mapper meta.RESTMapper
	http   *http.Client
	err    error
}

func newActAs(config *rest.Config) *actAs {
	s := scheme.New()
	_ = mgmtv1alpha1.AddToScheme(s)
	return &actAs{config: config, scheme: s}
}

// client acts as v's member: the username the hub's RBAC bindings name
// (the Organization's username prefix and the email), every authenticated
// user's group, and the sign-in's methods.
func (a *actAs) client(v *viewer, usernamePrefix string) (client.Client, error) {
	return a.as(rest.ImpersonationConfig{UserName: usernamePrefix + v.Member.Spec.Email, Groups: []string{"system:authenticated"},
		Extra: map[string][]string{identity.AMRExtra: v.Session.Methods, identity.ViaExtra: {ViaDashboard}}})
}

// provisioner acts as access.Provisioner, which may create Members and
// nothing else: for just-in-time provisioning, when no member is signed
// in yet.
func (a *actAs) provisioner() (client.Client, error) {
	return a.as(rest.ImpersonationConfig{UserName: access.Provisioner, Groups: []string{"system:authenticated"},
		Extra: map[string][]string{identity.ViaExtra: {ViaDashboard}}})
}

// as is a client of kube-apiserver that impersonates who.
func (a *actAs) as(who rest.ImpersonationConfig) (client.Client, error) {
	if a.config == nil {
		return nil, errNoWrites
	}
	// One mapper for all members: discovery once, not per request.
	a.once.Do(func() {
		if a.http, a.err = rest.HTTPClientFor(a.config); a.err == nil {
			a.mapper, a.err = apiutil.NewDynamicRESTMapper(a.config, a.http)
		}
	})
	if a.err != nil {
		return nil, a.err
	}
	cfg := rest.CopyConfig(a.config)
	cfg.Impersonate = who
	return client.New(cfg, client.Options{Scheme: a.scheme, Mapper: a.mapper})
}
