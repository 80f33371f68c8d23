package apiserver

import (
	"context"
	"fmt"
	"maps"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/minimax/platform-hub/internal/identity"
)

// actAs makes the management API's writes as the person who asked, by
// impersonation: kube-apiserver's RBAC, the hub's admission rules (roles,
// the MFA policy, who may own an Admin-scope key) and the audit log see
// that person, not the management API. Impersonated requests carry:
//   - the user's name and groups;
//   - the user's extras named in forwardedExtras (the sign-in's amr, and
//     for a hub key its key ID and scope); other extras are dropped, since
//     each forwarded key needs its own impersonation grant;
//   - identity.ViaExtra, naming the management API, which admission
//     trusts for keys it minted (hub.minimax.io/issued-key).
//
// The RBAC this needs is in config/apiserver/rbac.yaml.
type actAs struct {
	config *rest.Config
	scheme *runtime.Scheme
	mapper meta.RESTMapper
}

// forwardedExtras are the extras impersonation carries on.
var forwardedExtras = []string{identity.AMRExtra, identity.KeyIDExtra, identity.KeyScopeExtra}

// client is a client of kube-apiserver acting as ctx's user. Clients share
// the connections of config's transport (client-go caches transports by TLS
// settings; impersonation is a layer above).
func (a *actAs) client(ctx context.Context) (client.Client, error) {
	u, ok := genericapirequest.UserFrom(ctx)
	if !ok || u.GetName() == "" {
		return nil, apierrors.NewUnauthorized("no user in the request")
	}
	extra := map[string][]string{}
	for _, k := range forwardedExtras {
		if v, ok := u.GetExtra()[k]; ok {
			extra[k] = v
		}
	}
	extra[identity.ViaExtra] = []string{identity.ViaManagementAPI}
	cfg := rest.CopyConfig(a.config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: u.GetName(), Groups: u.GetGroups(), Extra: maps.Clone(extra)}
	c, err := client.New(cfg, client.Options{Scheme: a.scheme, Mapper: a.mapper})
	if err != nil {
		return nil, fmt.Errorf("a client acting as %s: %w", u.GetName(), err)
	}
	return c, nil
}
