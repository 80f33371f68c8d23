package controllers_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/client-go/rest"

	"github.com/minimax/platform-hub/internal/identity"
)

// oidcAudience is the client ID the suite's identity provider issues ID
// tokens for.
const oidcAudience = "platform-hub-tests"

// oidcIssuer is an OpenID Connect identity provider on loopback: it serves
// discovery and its signing key over TLS, and signs ID tokens. The suite's
// API server trusts it through a structured authentication configuration
// (authenticationConfig), so the people the tests sign in reach admission
// with the user extra a real cluster would give them.
type oidcIssuer struct {
	server *httptest.Server
	key    *ecdsa.PrivateKey
}

func startOIDCIssuer() (*oidcIssuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	o := &oidcIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": o.server.URL, "jwks_uri": o.server.URL + "/keys",
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &key.PublicKey, KeyID: "suite", Algorithm: string(jose.ES256), Use: "sig"}}})
	})
	o.server = httptest.NewTLSServer(mux)
	return o, nil
}

// authenticationConfig is the API server's configuration for the issuer. It
// is the one docs/api/member.md shows: the email claim is the username and the amr
// claim becomes the user extra the hub reads.
func (o *oidcIssuer) authenticationConfig() []byte {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.server.Certificate().Raw})
	indented := "      " + strings.ReplaceAll(strings.TrimSpace(string(ca)), "\n", "\n      ")
	return fmt.Appendf(nil, `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: %s
    audiences: [%s]
    certificateAuthority: |
%s
  claimMappings:
    username:
      claim: email
      prefix: ""
    extra:
    - key: %s
      valueExpression: "has(claims.amr) ? claims.amr : []"
`, o.server.URL, oidcAudience, indented, identity.AMRExtra)
}

// signIn returns a client configuration for the person with the email, as
// if they had signed in to the identity provider with the methods (RFC 8176
// amr values, such as "pwd" or "otp").
func (o *oidcIssuer) signIn(email string, methods ...string) (*rest.Config, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: o.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "suite"))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	token := map[string]any{
		"iss": o.server.URL, "aud": oidcAudience, "sub": email, "email": email, "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if len(methods) > 0 { // some providers send no amr at all
		token["amr"] = methods
	}
	claims, err := json.Marshal(token)
	if err != nil {
		return nil, err
	}
	signed, err := signer.Sign(claims)
	if err != nil {
		return nil, err
	}
	idToken, err := signed.CompactSerialize()
	if err != nil {
		return nil, err
	}
	cfg := rest.AnonymousClientConfig(restCfg)
	cfg.BearerToken = idToken
	return cfg, nil
}
