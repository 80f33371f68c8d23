package audit

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/auditlog"
)

type sink struct{ entries []auditlog.Entry }

func (s *sink) Record(e auditlog.Entry) { s.entries = append(s.entries, e) }
func (s *sink) Accepting() bool         { return true }

type heard struct{ users []string }

func (h *heard) Seen(user string, _ bool) { h.users = append(h.users, user) }

func member(role hubv1.Role, version string) *hubv1.Member {
	return &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: "bob", UID: "u-1", ResourceVersion: version},
		Spec: hubv1.MemberSpec{Email: "bob@example.com", Role: role}}
}

func stampOf(action string, old, obj *hubv1.Member, actor string) Stamp {
	s := Stamp{Entry: auditlog.Entry{Actor: actor, Action: action, Kind: "Member", Name: "bob", UID: "u-1"}}
	if old != nil {
		s.Before = Digest(old)
	}
	if obj != nil {
		s.After = Digest(obj)
	}
	return s
}

// TestCommitterRecordsWhatWasStored: a stamp is recorded when its change is
// seen stored, once however often admission saw it; a stamp whose change
// never comes (refused later), or that describes another change, expires
// unrecorded and is counted; a status write matches nothing.
func TestCommitterRecordsWhatWasStored(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	out, who := &sink{}, &heard{}
	c := &Committer{Sink: out, Activity: who, Clock: clk}
	c.init()

	dev, admin, viewer := member(hubv1.RoleDeveloper, "10"), member(hubv1.RoleAdmin, "11"), member(hubv1.RoleViewer, "12")
	c.Stamp(stampOf("update", dev, admin, "alice"))
	c.Stamp(stampOf("update", dev, admin, "alice"))  // the API server asked twice
	c.Stamp(stampOf("update", dev, viewer, "carol")) // refused by a later webhook

	statusOnly := dev.DeepCopy()
	statusOnly.Status.KeysOwned, statusOnly.ResourceVersion = 3, "11"
	c.updated(dev, statusOnly)
	g.Expect(out.entries).To(BeEmpty(), "a status write is no change")

	c.updated(dev, admin)
	g.Expect(out.entries).To(HaveLen(1))
	e := out.entries[0]
	g.Expect(e.Actor).To(Equal("alice"))
	g.Expect(e.ResourceVersion).To(Equal("11"))
	g.Expect(e.ID).To(Equal(entryID(e)))
	g.Expect(who.users).To(Equal([]string{"alice"}))

	clk.Step(3 * time.Minute)
	c.expire()
	g.Expect(testutil.ToFloat64(c.unconfirmed)).To(BeEquivalentTo(1), "carol's refused change")
	g.Expect(c.count).To(BeZero())
	c.updated(dev, viewer)
	g.Expect(out.entries).To(HaveLen(1), "an expired stamp is not recorded later")
}

// TestCommitterDeletesAndBounds: a delete is recorded when the deletion
// timestamp is set (finalizers pending) or the object goes, once; the
// stamps waiting are bounded, the oldest dropped first.
func TestCommitterDeletesAndBounds(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	out := &sink{}
	c := &Committer{Sink: out, Clock: clk, MaxStamps: 2}
	c.init()

	live := member(hubv1.RoleDeveloper, "20")
	c.Stamp(stampOf("delete", live, nil, "alice"))
	deleting := live.DeepCopy()
	deleting.DeletionTimestamp, deleting.ResourceVersion = &metav1.Time{Time: clk.Now()}, "21"
	c.updated(live, deleting)
	c.deleted(deleting)
	g.Expect(out.entries).To(HaveLen(1))
	g.Expect(out.entries[0].Action).To(Equal("delete"))

	for i, actor := range []string{"a", "b", "c"} {
		clk.Step(time.Second)
		s := stampOf("update", live, member(hubv1.RoleAdmin, "30"), actor)
		s.Entry.UID = string(rune('x' + i))
		c.Stamp(s)
	}
	g.Expect(c.count).To(Equal(2))
	g.Expect(testutil.ToFloat64(c.unconfirmed)).To(BeEquivalentTo(1))
	g.Expect(c.stamps).NotTo(HaveKey(BeEquivalentTo("x")), "the oldest went first")
}
