package apiserver_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/identity"
)

// team makes the members of a small organization and two projects: dev is
// a Developer in chatbot only, viewer a Viewer, ops an Admin. It returns
// once the access controller has bound their roles and the projects have
// their namespaces.
func (e *env) team(g Gomega) {
	ctx := context.Background()
	for name, role := range map[string]hubv1.Role{"dev": hubv1.RoleDeveloper, "viewer": hubv1.RoleViewer, "ops": hubv1.RoleAdmin} {
		g.Expect(e.client.Create(ctx, &hubv1.Member{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: hubv1.MemberSpec{Email: name + "@example.com", Role: role}})).To(Succeed())
	}
	g.Expect(e.client.Create(ctx, &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "chatbot"},
		Spec: hubv1.ProjectSpec{Access: []hubv1.ProjectAccess{{Kind: hubv1.SubjectMember, Name: "dev", Role: hubv1.RoleDeveloper}}}})).To(Succeed())
	g.Expect(e.client.Create(ctx, &hubv1.Project{ObjectMeta: metav1.ObjectMeta{Name: "research"}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"chatbot", "research"} {
			p := &hubv1.Project{}
			g.Expect(e.client.Get(ctx, client.ObjectKey{Name: name}, p)).To(Succeed())
			g.Expect(p.Status.Namespace).To(Equal(name))
		}
		out, err := e.run("dev@example.com", "auth", "can-i", "create", "keyrequests.management.hub.minimax.io", "-n", "chatbot")
		g.Expect(err).NotTo(HaveOccurred(), out)
		out, err = e.run("ops@example.com", "auth", "can-i", "create", "keyrequests.management.hub.minimax.io", "-n", "research")
		g.Expect(err).NotTo(HaveOccurred(), out)
	}, time.Minute, 200*time.Millisecond).Should(Succeed())
}

// call makes a chat completion through the gateway with key, and returns
// the status code.
func (e *env) call(g Gomega, key string) int {
	req, err := http.NewRequest(http.MethodPost, e.gatewayURL+"/v1/chat/completions",
		strings.NewReader(`{"model":"MiniMax-M2","messages":[{"role":"user","content":"hi"}]}`))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

const keyRequestYAML = `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata:
  name: ci-deploy
  namespace: chatbot
spec:
  idempotencyKey: 7f1c2a-first-deploy
  label: CI deploys
`

// TestKeyRequests: a Developer asks for a key with kubectl through the
// aggregator and sees it once; the gateway takes it; reading the APIKey
// shows no key; with delivery None, no Secret exists, and neither the API
// server's objects (as listed, and as etcd stores them), nor any log line,
// nor the usage store holds the key; the same request again gets the
// same key ID and no key. Delivery Secret puts the key in the Secret.
// Who may ask is RBAC's, and a refusal names the role needed.
func TestKeyRequests(t *testing.T) {
	g := NewWithT(t)
	e := startHubEnv(t, g)
	e.team(g)
	ctx := context.Background()

	out, err := e.runWithInput("dev@example.com", keyRequestYAML, "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	first := &mgmtv1alpha1.KeyRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), first)).To(Succeed())
	g.Expect(first.Status.Key).To(HavePrefix("mhub_"))
	g.Expect(first.Status.Key).To(ContainSubstring(first.Status.KeyID))
	g.Expect(first.Status.APIKeyName).To(Equal("ci-deploy"))
	g.Expect(first.Status.SecretName).To(BeEmpty())
	g.Expect(first.Status.ExpiresAt).NotTo(BeNil(), "the organization's default lifetime")
	plaintext := first.Status.Key

	g.Eventually(func() int { return e.call(g, plaintext) }, 20*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))

	key := &hubv1.APIKey{}
	g.Expect(e.client.Get(ctx, client.ObjectKey{Namespace: "chatbot", Name: "ci-deploy"}, key)).To(Succeed())
	g.Expect(key.Spec.Owner).To(Equal("dev@example.com"), "the caller owns the key")
	g.Expect(key.DeliveryMode()).To(Equal(hubv1.DeliveryNone))
	g.Expect(key.Status.KeyID).To(Equal(first.Status.KeyID))
	g.Expect(key.Status.Phase).To(Equal(hubv1.KeyActive))
	out, err = e.run("dev@example.com", "get", "apikey", "ci-deploy", "-n", "chatbot", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring(first.Status.KeyID))
	g.Expect(out).NotTo(ContainSubstring(plaintext), "a second read shows no key")
	secrets := &corev1.SecretList{}
	g.Expect(e.client.List(ctx, secrets, client.InNamespace("chatbot"))).To(Succeed())
	g.Expect(secrets.Items).To(BeEmpty(), "delivery None writes no Secret")

	// The same request again: the same key ID, no key, no second APIKey.
	out, err = e.runWithInput("dev@example.com", keyRequestYAML, "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	again := &mgmtv1alpha1.KeyRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), again)).To(Succeed())
	g.Expect(again.Status.KeyID).To(Equal(first.Status.KeyID))
	g.Expect(again.Status.Key).To(BeEmpty())
	g.Expect(again.Status.Repeated).To(BeTrue())
	g.Expect(out).NotTo(ContainSubstring(plaintext))
	keys := &hubv1.APIKeyList{}
	g.Expect(e.client.List(ctx, keys, client.InNamespace("chatbot"))).To(Succeed())
	g.Expect(keys.Items).To(HaveLen(1))
	// Another idempotency key under the taken name is a conflict.
	out, err = e.runWithInput("dev@example.com", strings.Replace(keyRequestYAML, "first-deploy", "second", 1), "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`apikeys.hub.minimax.io "ci-deploy" already exists`))

	// A Viewer reads usage but cannot ask for keys; a Developer cannot in
	// a project not theirs; an Admin can, with delivery Secret.
	out, err = e.runWithInput("viewer@example.com", keyRequestYAML, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`cannot create resource "apikeys" in API group "hub.minimax.io" in the namespace "chatbot": ` +
		`needs the Developer role in this project (the Project's access list names you), or the Admin or Owner role`))
	elsewhere := strings.Replace(keyRequestYAML, "namespace: chatbot", "namespace: research", 1)
	out, err = e.runWithInput("dev@example.com", elsewhere, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`in the namespace "research": needs the Developer role in this project`))
	withSecret := strings.Replace(elsewhere, "label: CI deploys", "label: batch jobs\n  delivery: Secret", 1)
	out, err = e.runWithInput("ops@example.com", withSecret, "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	inSecret := &mgmtv1alpha1.KeyRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), inSecret)).To(Succeed())
	g.Expect(inSecret.Status.SecretName).To(Equal("ci-deploy"))
	secret := &corev1.Secret{}
	g.Expect(e.client.Get(ctx, client.ObjectKey{Namespace: "research", Name: "ci-deploy"}, secret)).To(Succeed())
	g.Expect(string(secret.Data[hubv1.SecretKeyCurrent])).To(Equal(inSecret.Status.Key))
	g.Expect(e.call(g, inSecret.Status.Key)).To(Equal(http.StatusOK))

	// Bad input is refused with the field path.
	out, err = e.runWithInput("dev@example.com", strings.Replace(keyRequestYAML, "label: CI deploys", "scope: Root", 1),
		"create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`spec.scope: Unsupported value: "Root"`))
	// Nobody but the management API sets a key's digest.
	forged := &hubv1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "chatbot", Name: "forged", Annotations: map[string]string{
		hubv1.IssuedKeyAnnotation: hubv1.IssuedKey{KeyID: key.Status.KeyID, Digest: key.Status.Digest}.String()}},
		Spec: hubv1.APIKeySpec{Owner: "dev@example.com", Delivery: &hubv1.KeyDelivery{Mode: hubv1.DeliveryNone}}}
	err = e.client.Create(ctx, forged)
	g.Expect(err).To(MatchError(ContainSubstring(`metadata.annotations[hub.minimax.io/issued-key]: Forbidden: set only by the management API`)))
	forged.Annotations = nil
	err = e.client.Create(ctx, forged)
	g.Expect(err).To(MatchError(ContainSubstring(`spec.delivery.mode: Forbidden: a key of mode None is created by a key request`)))

	e.sweep(g, plaintext)
}

// sweep fails when secret is anywhere but where it must be: in any object
// the API server lists, in etcd's files, in any log line, or in the usage
// store's files.
func (e *env) sweep(g Gomega, secret string) {
	out, err := e.run("admin", "api-resources", "--verbs=list", "-o", "name")
	g.Expect(err).NotTo(HaveOccurred(), out)
	listed := 0
	for _, resource := range strings.Fields(out) {
		if strings.HasSuffix(resource, "management.hub.minimax.io") {
			continue // computed answers, not stored objects (usage records need a range)
		}
		objects, err := e.run("admin", "get", resource, "-A", "-o", "json")
		g.Expect(err).NotTo(HaveOccurred(), objects)
		g.Expect(objects).NotTo(ContainSubstring(secret), resource)
		listed++
	}
	g.Expect(listed).To(BeNumerically(">", 40), "every kind the API server serves")
	files := 0
	for _, dir := range []string{filepath.Join(e.dir, "cluster", "etcd"), e.dir} {
		g.Expect(filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, readErr := os.ReadFile(path)
			if readErr != nil {
				return nil //nolint:nilerr // a file removed while walking
			}
			g.Expect(bytes.Contains(b, []byte(secret))).To(BeFalse(), path)
			files++
			return nil
		})).To(Succeed())
	}
	g.Expect(files).To(BeNumerically(">", 3), "etcd's files and the usage store's")
	logs := e.logs.String()
	g.Expect(logs).NotTo(BeEmpty())
	g.Expect(strings.Contains(logs, secret)).To(BeFalse(), "no log line")
}

// createKey asks for a key as user and returns the answer.
func (e *env) createKey(g Gomega, user, manifest string) *mgmtv1alpha1.KeyRequest {
	out, err := e.runWithInput(user, manifest, "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	answer := &mgmtv1alpha1.KeyRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), answer)).To(Succeed())
	g.Expect(answer.Status.Key).NotTo(BeEmpty(), out)
	return answer
}

const rotationYAML = `apiVersion: management.hub.minimax.io/v1alpha1
kind: RotationRequest
metadata:
  name: 2026-12-01
  namespace: chatbot
spec:
  apiKeyName: ci-deploy
`

// TestRotationRequests: a Developer rotates their key of delivery None and
// sees the new key once; both keys work through the overlap; the same
// rotation ID again gets the new key ID and no key, and rotates nothing,
// even after a later rotation.
// A key in a Secret rotates there. With an Admin-scope hub key, a tool
// outside the aggregator rotates a key and asks for one; a Standard key
// is refused with the scope needed.
func TestRotationRequests(t *testing.T) {
	g := NewWithT(t)
	e := startHubEnv(t, g)
	e.team(g)
	ctx := context.Background()
	old := e.createKey(g, "dev@example.com", keyRequestYAML)

	out, err := e.runWithInput("dev@example.com", rotationYAML, "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	rotated := &mgmtv1alpha1.RotationRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), rotated)).To(Succeed())
	g.Expect(rotated.Status.Key).To(HavePrefix("mhub_"))
	g.Expect(rotated.Status.KeyID).NotTo(Equal(old.Status.KeyID))
	g.Expect(rotated.Status.RotationID).To(Equal("2026-12-01"))
	g.Expect(rotated.Status.PreviousKeyID).To(Equal(old.Status.KeyID))
	g.Expect(rotated.Status.PreviousKeyValidUntil).NotTo(BeNil())
	g.Expect(time.Until(rotated.Status.PreviousKeyValidUntil.Time)).To(BeNumerically("~", 24*time.Hour, time.Minute))
	g.Eventually(func() int { return e.call(g, rotated.Status.Key) }, 20*time.Second, 100*time.Millisecond).Should(Equal(http.StatusOK))
	g.Expect(e.call(g, old.Status.Key)).To(Equal(http.StatusOK), "the previous key works through the overlap")

	out, err = e.runWithInput("dev@example.com", rotationYAML, "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	again := &mgmtv1alpha1.RotationRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), again)).To(Succeed())
	g.Expect(again.Status.KeyID).To(Equal(rotated.Status.KeyID))
	g.Expect(again.Status.Key).To(BeEmpty())
	g.Expect(again.Status.Repeated).To(BeTrue())
	key := &hubv1.APIKey{}
	g.Expect(e.client.Get(ctx, client.ObjectKey{Namespace: "chatbot", Name: "ci-deploy"}, key)).To(Succeed())
	g.Expect(key.Status.Revision).To(BeEquivalentTo(2), "a repeat rotates nothing")

	// A later rotation, then the first one again (a retry that took long):
	// it answers the key it made, superseded, and rotates nothing.
	out, err = e.runWithInput("dev@example.com", strings.Replace(rotationYAML, "2026-12-01", "2026-12-02", 1), "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	second := &mgmtv1alpha1.RotationRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), second)).To(Succeed())
	g.Expect(second.Status.PreviousKeyID).To(Equal(rotated.Status.KeyID))
	out, err = e.runWithInput("dev@example.com", rotationYAML, "create", "-f", "-", "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred(), out)
	late := &mgmtv1alpha1.RotationRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), late)).To(Succeed())
	g.Expect(late.Status).To(Equal(mgmtv1alpha1.RotationRequestStatus{RotationID: "2026-12-01", KeyID: rotated.Status.KeyID,
		Repeated: true, Superseded: true}))
	g.Expect(e.client.Get(ctx, client.ObjectKey{Namespace: "chatbot", Name: "ci-deploy"}, key)).To(Succeed())
	g.Expect(key.Status.Revision).To(BeEquivalentTo(3), "an earlier rotation repeated rotates nothing")
	g.Expect(key.Status.KeyID).To(Equal(second.Status.KeyID))

	out, err = e.runWithInput("viewer@example.com", rotationYAML, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`cannot get resource "apikeys" in API group "hub.minimax.io" in the namespace "chatbot": needs the Developer role`))
	out, err = e.runWithInput("dev@example.com", strings.Replace(rotationYAML, "apiKeyName: ci-deploy", "apiKeyName: nothing", 1),
		"create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`apikeys.hub.minimax.io "nothing" not found`))

	// A tool outside the cluster, with ops's Admin-scope key: it rotates a
	// key in a Secret, and asks for a key.
	admin := e.createKey(g, "ops@example.com", `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata: {name: ops-automation, namespace: research}
spec: {scope: Admin, label: automation}
`)
	standard := e.createKey(g, "ops@example.com", `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata: {name: ops-standard, namespace: research}
spec: {label: calls}
`)
	batch := e.createKey(g, "ops@example.com", `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata: {name: batch, namespace: research}
spec: {delivery: Secret}
`)
	rotateBatch := `apiVersion: management.hub.minimax.io/v1alpha1
kind: RotationRequest
metadata: {name: first, namespace: research}
spec: {apiKeyName: batch}
`
	g.Eventually(func() error {
		out, err = e.direct(admin.Status.Key, rotateBatch, "create", "-f", "-", "-o", "yaml")
		return err
	}, 10*time.Second, 200*time.Millisecond).Should(Succeed(), func() string { return out })
	inSecret := &mgmtv1alpha1.RotationRequest{}
	g.Expect(yaml.Unmarshal([]byte(out), inSecret)).To(Succeed())
	g.Expect(inSecret.Status.PreviousKeyID).To(Equal(batch.Status.KeyID))
	secret := &corev1.Secret{}
	g.Expect(e.client.Get(ctx, client.ObjectKey{Namespace: "research", Name: "batch"}, secret)).To(Succeed())
	g.Expect(string(secret.Data[hubv1.SecretKeyCurrent])).To(Equal(inSecret.Status.Key))
	g.Expect(string(secret.Data[hubv1.SecretKeyPrevious])).To(Equal(batch.Status.Key))
	g.Expect(e.client.Get(ctx, client.ObjectKey{Namespace: "research", Name: "batch"}, key)).To(Succeed())
	g.Expect(key.Spec.Rotation.Trigger).To(Equal("first"))
	// The audit log names the person, the management API and the key.
	g.Eventually(func(g Gomega) {
		entries, err := e.audit.AuditEntries(ctx, auditlog.Filter{Kind: "APIKey", Namespace: "research", Name: "batch"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(entries).To(ContainElement(And(HaveField("Action", auditlog.ActionUpdate), HaveField("Actor", "ops@example.com"),
			HaveField("Via", identity.ViaManagementAPI), HaveField("KeyID", admin.Status.KeyID))))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())

	out, err = e.direct(standard.Status.Key, rotateBatch, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("a Standard-scope hub key cannot use the management API; use an Admin-scope key"))
}

const inviteYAML = `apiVersion: management.hub.minimax.io/v1alpha1
kind: Member
metadata:
  name: carol
spec:
  email: carol@example.com
  role: Viewer
`

// TestMembersWithAHubKey: the third automation case. A tool outside the
// cluster, with an Admin's Admin-scope hub key, invites a member, changes
// their role and removes them through the management API alone; the
// Members are the hub's own, written as the Admin (audit names them, the
// management API and the key). A Developer's key may not (the refusal
// names the role), nor may a Developer through the aggregator.
func TestMembersWithAHubKey(t *testing.T) {
	g := NewWithT(t)
	e := startHubEnv(t, g)
	e.team(g)
	ctx := context.Background()
	admin := e.createKey(g, "ops@example.com", `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata: {name: ops-automation, namespace: research}
spec: {scope: Admin}
`)

	var out string
	var err error
	g.Eventually(func() error {
		out, err = e.direct(admin.Status.Key, inviteYAML, "create", "-f", "-")
		return err
	}, 10*time.Second, 200*time.Millisecond).Should(Succeed(), func() string { return out })
	g.Expect(out).To(Equal("member.management.hub.minimax.io/carol created\n"))
	carol := &hubv1.Member{}
	g.Expect(e.client.Get(ctx, client.ObjectKey{Name: "carol"}, carol)).To(Succeed())
	g.Expect(carol.Spec.Role).To(Equal(hubv1.RoleViewer))

	out, err = e.direct(admin.Status.Key, "", "patch", "member", "carol", "--type=merge", "-p", `{"spec":{"role":"Developer"}}`)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(e.client.Get(ctx, client.ObjectKey{Name: "carol"}, carol)).To(Succeed())
	g.Expect(carol.Spec.Role).To(Equal(hubv1.RoleDeveloper))
	out, err = e.direct(admin.Status.Key, "", "get", "members")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(MatchRegexp(`carol +carol@example.com +Developer`))
	g.Expect(out).To(MatchRegexp(`ops +ops@example.com +Admin`))

	// Raising someone above the caller's own role is admission's to refuse.
	out, err = e.direct(admin.Status.Key, "", "patch", "member", "carol", "--type=merge", "-p", `{"spec":{"role":"Owner"}}`)
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("spec.role"))

	g.Eventually(func(g Gomega) {
		entries, err := e.audit.AuditEntries(ctx, auditlog.Filter{Kind: "Member", Name: "carol"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(entries).To(ContainElement(And(HaveField("Action", auditlog.ActionUpdate), HaveField("Actor", "ops@example.com"),
			HaveField("Via", identity.ViaManagementAPI), HaveField("KeyID", admin.Status.KeyID))))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())

	out, err = e.direct(admin.Status.Key, "", "delete", "member", "carol")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.client.Get(ctx, client.ObjectKey{Name: "carol"}, carol))
	}, 20*time.Second, 200*time.Millisecond).Should(BeTrue())

	out, err = e.runWithInput("dev@example.com", inviteYAML, "create", "-f", "-")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`cannot create resource "members" in API group "management.hub.minimax.io"`))
	// Through the aggregator, an Admin invites as with the CRD; the
	// schema is the CRD's.
	out, err = e.runWithInput("ops@example.com", strings.ReplaceAll(inviteYAML, "carol", "dave"), "create", "-f", "-")
	g.Expect(err).NotTo(HaveOccurred(), out)
	out, err = e.run("ops@example.com", "explain", "members.management.hub.minimax.io.spec.role")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("GROUP:      management.hub.minimax.io"))

	// The audit log, page by page: carol's invitation, role change and
	// removal, each with who, through what and which key (the removal's
	// entry is committed once the Member is gone).
	g.Eventually(func(g Gomega) {
		out, err := e.run("ops@example.com", "get", "auditevents", "--chunk-size=1", "--field-selector", "object.kind=Member,object.name=carol")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(MatchRegexp(`(?m)^\S+ +ops@example.com +create +Member +carol +management-api +` + admin.Status.KeyID))
		g.Expect(out).To(MatchRegexp(`(?m)^\S+ +ops@example.com +update +Member +carol +management-api`))
		g.Expect(out).To(MatchRegexp(`(?m)^\S+ +ops@example.com +delete +Member +carol +management-api`))
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())
	out, err = e.run("ops@example.com", "get", "auditevents", "--field-selector", "object.kind=Member,object.name=carol",
		"-o", "jsonpath={.items[1].changes}")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring(`"field":"spec.role","new":"Developer","old":"Viewer"`))
	out, err = e.run("viewer@example.com", "get", "auditevents")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`cannot list resource "auditevents"`))
	out, err = e.run("ops@example.com", "get", "auditevents", "--field-selector", "verb=x")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`"verb" is not supported for AuditEvents`))
}

// TestAlertHistory: Admins list the alert history page by page, with each
// delivery's state, filtered by project and type; Viewers may not.
func TestAlertHistory(t *testing.T) {
	g := NewWithT(t)
	e := startEnv(t, g)
	ctx := context.Background()
	at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	alert := func(id string, when time.Time, kind alertlog.Kind, project string, threshold int32) alertlog.Alert {
		return alertlog.Alert{ID: id, Kind: kind, Time: when, Namespace: project, Name: "monthly-budget", SourceUID: "uid-" + id,
			Project: project, CycleStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Threshold: threshold,
			Payload: []byte(`{}`), Deliveries: []alertlog.Delivery{{Channel: project + "/finance"}}}
	}
	_, err := e.alerts.RecordAlerts(ctx, []alertlog.Alert{
		alert("cap-50", at, alertlog.KindCapThreshold, "chatbot", 50),
		alert("cap-80", at.Add(time.Hour), alertlog.KindCapThreshold, "chatbot", 80),
		alert("key-7", at.Add(2*time.Hour), alertlog.KindKeyExpiring, "research", 7),
	})
	g.Expect(err).NotTo(HaveOccurred())
	e.member(g, "ops@example.com", hubv1.RoleAdmin)
	e.member(g, "viewer@example.com", hubv1.RoleViewer)

	out, err := e.run("ops@example.com", "get", "alerts.management.hub.minimax.io", "--chunk-size=1")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Split(strings.TrimSpace(out), "\n")).To(HaveLen(4), out)
	g.Expect(out).To(MatchRegexp(`2026-11-20T09:00:00Z +spendingcap.threshold +chatbot +chatbot/monthly-budget +50 +0/1`))
	out, err = e.run("ops@example.com", "get", "alerts.management.hub.minimax.io", "--field-selector", "project=chatbot",
		"-o", "jsonpath={.items[*].metadata.name} {.items[0].deliveries[0].state}")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("cap-50 cap-80 Pending"))
	out, err = e.run("ops@example.com", "get", "alerts.management.hub.minimax.io", "--field-selector", "type=apikey.expiring",
		"-o", "jsonpath={.items[*].metadata.name}")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(Equal("key-7"))
	out, err = e.run("viewer@example.com", "get", "alerts.management.hub.minimax.io")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring(`cannot list resource "alerts"`))
}
