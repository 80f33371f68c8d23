// Package invitations is what Members' invitations by email are made of:
// tokens and their digests, links, the Member status fields an invitation
// owns, and the handler that takes acceptance. The server role's
// reconcilers.InvitationReconciler sends them.
//
// Creating a Member (or changing its spec.resendInvitation) sends an email
// with a link that carries a 256-bit random token. Only the token's SHA-256
// digest and the invitation's expiry are kept, in the Member's status. The
// link cannot be forged or extended: the server accepts only a token whose
// digest matches, before the expiry it holds itself. Accepting clears the
// digest, so a link works once. A new invitation replaces the digest, so
// older links stop working.
package invitations

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/statusapply"
)

// DefaultTTL is how long an invitation link works.
const DefaultTTL = 7 * 24 * time.Hour

// AcceptPath is where invitation links point.
const AcceptPath = "/v1/invitations/accept"

// NewToken returns a random token and its digest.
func NewToken() (token, digest string, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	return token, Digest(token), nil
}

// Digest is the stored form of a token.
func Digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// statusFields are the Member status fields the invitations own (JSON
// names), with the InvitationSent condition: the sender's
// (reconcilers.InvitationReconciler) and the acceptance handler's, one
// writer of the invitation's lifecycle under statusapply.OwnerInvitations.
var statusFields = []string{"invitationDigest", "invitationFor", "invitationSentAt", "invitationExpiresAt",
	"acceptedAt", "acceptedDigest", "conditions"}

// WriteStatus applies the invitation's fields of m's status, locked on the
// version read: a digest stored over a newer invitation, or over an
// acceptance, would make a link work that should not, and two uses of one
// link at once must not both succeed. Every write carries all the fields,
// as apply removes those left out. On success m is the member as stored.
func WriteStatus(ctx context.Context, c client.Client, m *hubv1.Member) error {
	owned, err := statusapply.Select(m.Status, statusFields...)
	if err != nil {
		return err
	}
	statusapply.KeepConditions(owned, hubv1.InvitationSentCondition)
	return statusapply.ApplyIfUnchanged(ctx, c, m, owned, statusapply.OwnerInvitations)
}

// RecordSent records the invitation of member name with token as sent at
// sentAt, working until expiresAt, for a link handed over without email
// (hub dev prints the first Owner's). A conflict with another writer of the
// member's status (the access controller) reads the member again and
// writes again.
func RecordSent(ctx context.Context, c client.Client, r client.Reader, name, token string, sentAt, expiresAt time.Time) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		m := &hubv1.Member{}
		if err := r.Get(ctx, client.ObjectKey{Name: name}, m); err != nil {
			return err
		}
		m.Status.InvitationDigest, m.Status.InvitationFor = Digest(token), m.Spec.ResendInvitation
		m.Status.InvitationSentAt = &metav1.Time{Time: sentAt.Truncate(time.Second)}
		m.Status.InvitationExpiresAt = &metav1.Time{Time: expiresAt.Truncate(time.Second)}
		return WriteStatus(ctx, c, m)
	})
}

// Link is the acceptance link of a member's invitation.
func Link(publicURL, member, token string) string {
	q := url.Values{"member": {member}, "token": {token}}
	return strings.TrimSuffix(publicURL, "/") + AcceptPath + "?" + q.Encode()
}
