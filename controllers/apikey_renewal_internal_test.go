package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestRenewalNeverComesTooSoon: over lifetimes, overlaps and renewBefore
// values (those near the lifetime, the overlap and two thirds included), a
// key never renews sooner than a third of its lifetime or than its overlap
// after issuance, so renewals cannot loop and an automatic renewal never
// retires a previous key inside its overlap; a renewBefore within the
// bound is honoured to the second.
func TestRenewalNeverComesTooSoon(t *testing.T) {
	created := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, lifetime := range []hubv1.KeyLifetime{hubv1.KeyLifetime30Days, hubv1.KeyLifetime90Days, hubv1.KeyLifetime180Days} {
		life, _ := lifetime.Duration()
		for _, overlap := range []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour, 168 * time.Hour} {
			befores := []time.Duration{time.Second, time.Hour, overlap, life / 3, life*2/3 - time.Second, life * 2 / 3,
				life*2/3 + time.Second, life - overlap, life - overlap + time.Second, life - 20*time.Second, life, 2 * life}
			for _, before := range befores {
				s := &apiKeyScope{key: &hubv1.APIKey{
					Spec: hubv1.APIKeySpec{Rotation: &hubv1.RotationSpec{RenewBefore: &metav1.Duration{Duration: before},
						Overlap: &metav1.Duration{Duration: overlap}}},
					Status: hubv1.APIKeyStatus{CreatedAt: ptrTime(created), ExpiresAt: ptrTime(created.Add(life))},
				}}
				at := s.renewAt()
				if at == nil {
					t.Fatalf("%s, overlap %s, renewBefore %s: no renewal", lifetime, overlap, before)
				}
				after := at.Sub(created)
				if after < life/3 || after < overlap || !at.Before(created.Add(life)) {
					t.Errorf("%s, overlap %s, renewBefore %s: renews %s after issuance", lifetime, overlap, before, after)
				}
				if before <= min(life*2/3, life-overlap) && after != life-before {
					t.Errorf("%s, overlap %s, renewBefore %s: not honoured (renews %s after issuance)", lifetime, overlap, before, after)
				}
			}
		}
	}
}
