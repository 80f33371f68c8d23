package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// TestSpendingCapValidation: bad caps are refused at admission, each with
// the field and what to change.
func TestSpendingCapValidation(t *testing.T) {
	ctx := context.Background()
	project := newProject("caps-validation")
	g := NewWithT(t)
	g.Expect(k8sClient.Create(ctx, project)).To(Succeed())
	t.Cleanup(func() { deleteProject(t, project) })
	g.Eventually(func() string {
		_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(project), project)
		return project.Status.Namespace
	}).Should(Equal("caps-validation"))

	valid := func() *hubv1.SpendingCap {
		return &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "caps-validation", Name: "cap"},
			Spec: hubv1.SpendingCapSpec{Limit: ptr.To(hubv1.Amount("500.00")), Enforcement: hubv1.CapHard}}
	}
	t.Run("valid, in a project's namespace", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8sClient.Create(ctx, valid(), client.DryRunAll)).To(Succeed())
	})
	t.Run("defaults", func(t *testing.T) {
		g := NewWithT(t)
		c := valid()
		c.Spec.Enforcement = ""
		g.Expect(k8sClient.Create(ctx, c, client.DryRunAll)).To(Succeed())
		g.Expect(c.Spec.Enforcement).To(Equal(hubv1.CapAlertOnly))
		g.Expect(c.Spec.EffectiveThresholds()).To(Equal([]int32{50, 80, 100}))
	})
	for _, tt := range []struct {
		name         string
		mutate       func(*hubv1.SpendingCap)
		field, words string
	}{
		{"no limit at all", func(c *hubv1.SpendingCap) { c.Spec.Limit = nil }, "spec", "set limit (money per billing cycle), tokenLimit"},
		{"a negative limit", func(c *hubv1.SpendingCap) { c.Spec.Limit = ptr.To(hubv1.Amount("-5")) }, "spec.limit", "must be a non-negative decimal"},
		{"a zero limit", func(c *hubv1.SpendingCap) { c.Spec.Limit = ptr.To(hubv1.Amount("0.00")) }, "spec.limit", "must be more than zero"},
		{"a negative token limit", func(c *hubv1.SpendingCap) { c.Spec.TokenLimit = ptr.To[int64](-1) }, "spec.tokenLimit", "should be greater than or equal to 1"},
		{"a threshold over 100", func(c *hubv1.SpendingCap) { c.Spec.Thresholds = []int32{50, 120} }, "spec.thresholds[1]", "less than or equal to 100"},
		{"a threshold of 0", func(c *hubv1.SpendingCap) { c.Spec.Thresholds = []int32{0, 50} }, "spec.thresholds[0]", "greater than or equal to 1"},
		{"unsorted thresholds", func(c *hubv1.SpendingCap) { c.Spec.Thresholds = []int32{80, 50, 100} }, "spec.thresholds", "ascending order"},
		{"a repeated threshold", func(c *hubv1.SpendingCap) { c.Spec.Thresholds = []int32{50, 50} }, "spec.thresholds[1]", "Duplicate value"},
		{"an unknown enforcement", func(c *hubv1.SpendingCap) { c.Spec.Enforcement = "Soft" }, "spec.enforcement", `supported values: "Hard", "AlertOnly"`},
		{"outside any project", func(c *hubv1.SpendingCap) { c.Namespace = "default" }, "metadata.namespace", "neither"},
		{"a group cap in a project", func(c *hubv1.SpendingCap) { c.Spec.Group = "ml" }, "spec.group", "lives in the hub's namespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			c := valid()
			tt.mutate(c)
			err := k8sClient.Create(ctx, c, client.DryRunAll)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tt.field))
			g.Expect(err.Error()).To(ContainSubstring(tt.words))
		})
	}
}
