package dev

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/invitations"
)

// ownerMember names the first Owner's Member in `hub dev`.
const ownerMember = "owner"

// firstOwnerLink returns what the banner says about the first Owner: a
// one-time link that creates their account, while there is no account yet.
// On a state directory without members it makes the Owner; each start
// makes a new link (the previous one stops working), since only its
// digest is kept. No email is sent: the invitation is recorded as sent.
func firstOwnerLink(ctx context.Context, c client.Client, r client.Reader, opts Options) (string, error) {
	email := opts.OwnerEmail
	if email == "" {
		email = "owner@example.com"
	}
	m := &hubv1.Member{}
	err := r.Get(ctx, client.ObjectKey{Name: ownerMember}, m)
	switch {
	case apierrors.IsNotFound(err):
		var members hubv1.MemberList
		if err := c.List(ctx, &members); err != nil {
			return "", err
		}
		if len(members.Items) > 0 {
			return "", nil // the user's own team
		}
		m = &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: ownerMember}, Spec: hubv1.MemberSpec{Email: email, Role: hubv1.RoleOwner}}
		if err := c.Create(ctx, m); err != nil {
			return "", fmt.Errorf("creating the first Owner: %w", err)
		}
	case err != nil:
		return "", err
	}
	if m.Status.AcceptedAt != nil {
		return fmt.Sprintf("                                   sign in as %s", m.Spec.Email), nil
	}
	token, _, err := invitations.NewToken()
	if err != nil {
		return "", err
	}
	now := time.Now()
	if err := invitations.RecordSent(ctx, c, r, ownerMember, token, now, now.Add(7*24*time.Hour)); err != nil {
		return "", fmt.Errorf("writing the first Owner's invitation: %w", err)
	}
	return fmt.Sprintf("  first Owner (%s), once:\n    %s", m.Spec.Email,
		invitations.Link("http://"+opts.DashboardAddr, m.Name, token)), nil
}

// dashboardSealingKey reads the key that seals dashboard accounts' second
// factors from the state directory, making it on the first start.
func dashboardSealingKey(stateDir string) ([]byte, error) {
	path := filepath.Join(stateDir, "dashboard-sealing.key")
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key = make([]byte, accounts.SealingKeyLength)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		return key, os.WriteFile(path, key, 0o600)
	}
	return key, err
}
