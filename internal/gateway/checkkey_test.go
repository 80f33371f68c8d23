package gateway

import (
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestRetiredPreviousKeyStopsAtOnce: the previous key of a rotation stops
// as soon as spec.rotation.retirePreviousKeyID names it, from the spec
// alone: its status still shows the overlap, as it does while the manager
// is down.
func TestRetiredPreviousKeyStopsAtOnce(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	key := &hubv1.APIKey{Status: hubv1.APIKeyStatus{Phase: hubv1.KeyActive, Digest: "sha256:new",
		PreviousKey: &hubv1.PreviousKey{KeyID: "OldKey0001", Digest: "sha256:old", ValidUntil: metav1.NewTime(now.Add(24 * time.Hour))}}}
	if v := checkKey(key, "sha256:old", now); !v.allowed() {
		t.Fatalf("the previous key within its overlap: %+v", v)
	}
	key.Spec.Rotation = &hubv1.RotationSpec{RetirePreviousKeyID: "OldKey0001"}
	if v := checkKey(key, "sha256:old", now); v.allowed() || v.status != http.StatusUnauthorized {
		t.Fatalf("the retired previous key: %+v", v)
	}
	if v := checkKey(key, "sha256:new", now); !v.allowed() {
		t.Fatalf("the current key: %+v", v)
	}
	key.Spec.Rotation.RetirePreviousKeyID = "SomeOther1"
	if v := checkKey(key, "sha256:old", now); !v.allowed() {
		t.Fatalf("retiring another key ID leaves this one: %+v", v)
	}
}
