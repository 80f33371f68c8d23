package apiserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"sigs.k8s.io/controller-runtime/pkg/client"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// openAIClient is OpenAI's own Go client, pointed at the management API
// with a hub key.
func (e *env) openAIClient(g Gomega, key string) (openai.Client, *http.Client) {
	ca, err := os.ReadFile(filepath.Join(e.dir, "ca.crt"))
	g.Expect(err).NotTo(HaveOccurred())
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(ca)).To(BeTrue())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "hub-apiserver.hub-system.svc"}},
		Timeout: 30 * time.Second}
	return openai.NewClient(option.WithBaseURL("https://"+e.api.ListenAddr+"/v1/"), option.WithAdminAPIKey(key),
		option.WithHTTPClient(hc), option.WithMaxRetries(0)), hc
}

// rawJSON GETs path from the management API with key and decodes the
// answer, for the shapes the client does not check.
func rawJSON(g Gomega, hc *http.Client, base, key, path string) (int, map[string]any) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]any{}
	g.Expect(json.Unmarshal(body, &out)).To(Succeed(), string(body))
	return resp.StatusCode, out
}

// TestOpenAIAdminAPI: OpenAI's Go client, given the management API's URL
// and an Admin-scope hub key, reads usage and costs equal to the stored
// events, lists, creates and archives projects, lists and deletes a
// project's keys, changes a user's role, invites and withdraws, and reads
// the audit log; the answers have the shapes of OpenAI's public API
// reference (written down below), and refusals come in OpenAI's error body.
func TestOpenAIAdminAPI(t *testing.T) {
	g := NewWithT(t)
	e := startHubEnv(t, g)
	e.team(g)
	ctx := context.Background()
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	_, err := e.store.Insert(ctx, []usage.Event{
		{ID: "o1", Time: day.Add(9 * time.Hour), Project: "chatbot", KeyID: "AbCdEf0123", Service: pricing.Chat,
			Endpoint: "/v1/chat/completions", Model: "MiniMax-M2", InputTokens: 1000, CachedInputTokens: 300, OutputTokens: 500,
			StatusCode: 200},
		{ID: "o2", Time: day.Add(33 * time.Hour), Project: "research", KeyID: "ZyXwVu9876", Service: pricing.Chat,
			Endpoint: "/v1/chat/completions", Model: "MiniMax-M2", InputTokens: 2000, StatusCode: 200},
		{ID: "o3", Time: day.Add(34 * time.Hour), Project: "research", KeyID: "ZyXwVu9876", Service: pricing.Video,
			Endpoint: "/v1/video_generation", Model: "MiniMax-Hailuo-02", VideoSeconds: 6, StatusCode: 200},
	})
	g.Expect(err).NotTo(HaveOccurred())
	admin := e.createKey(g, "ops@example.com", `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata: {name: ops-automation, namespace: research}
spec: {scope: Admin}
`)
	oai, hc := e.openAIClient(g, admin.Status.Key)
	base := "https://" + e.api.ListenAddr

	// Usage of the completions endpoints, by project, in daily buckets.
	var completions *openai.AdminOrganizationUsageCompletionsResponse
	g.Eventually(func() error {
		completions, err = oai.Admin.Organization.Usage.Completions(ctx, openai.AdminOrganizationUsageCompletionsParams{
			StartTime: day.Unix(), EndTime: openai.Int(day.Add(72 * time.Hour).Unix()),
			BucketWidth: openai.AdminOrganizationUsageCompletionsParamsBucketWidth1d, GroupBy: []string{"project_id"}})
		return err
	}, 10*time.Second, 200*time.Millisecond).Should(Succeed())
	g.Expect(completions.Data).To(HaveLen(3), "every day of the range, empty ones too")
	g.Expect(completions.HasMore).To(BeFalse())
	first := completions.Data[0]
	g.Expect(first.StartTime).To(Equal(day.Unix()))
	g.Expect(first.EndTime).To(Equal(day.Add(24 * time.Hour).Unix()))
	g.Expect(first.Results).To(HaveLen(1))
	g.Expect(first.Results[0].ProjectID).To(Equal("chatbot"))
	g.Expect(first.Results[0].InputTokens).To(BeEquivalentTo(1000))
	g.Expect(first.Results[0].InputCachedTokens).To(BeEquivalentTo(300))
	g.Expect(first.Results[0].OutputTokens).To(BeEquivalentTo(500))
	g.Expect(first.Results[0].NumModelRequests).To(BeEquivalentTo(1))
	g.Expect(completions.Data[1].Results).To(HaveLen(1), "the video call is not a completion")
	g.Expect(completions.Data[1].Results[0].InputTokens).To(BeEquivalentTo(2000))
	g.Expect(completions.Data[2].Results).To(BeEmpty())
	// By user: the member who owns each key, as the usage server records it.
	g.Expect(e.store.RecordKeyOwners(ctx, []usage.KeyOwner{{KeyID: "AbCdEf0123", Project: "chatbot", Owner: "dev@example.com"}})).To(Succeed())
	byUser, err := oai.Admin.Organization.Usage.Completions(ctx, openai.AdminOrganizationUsageCompletionsParams{
		StartTime: day.Unix(), EndTime: openai.Int(day.Add(24 * time.Hour).Unix()), GroupBy: []string{"user_id"},
		UserIDs: []string{"Dev@Example.com"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(byUser.Data[0].Results).To(HaveLen(1))
	g.Expect(byUser.Data[0].Results[0].UserID).To(Equal("dev@example.com"))
	g.Expect(byUser.Data[0].Results[0].InputTokens).To(BeEquivalentTo(1000))
	// Pages of buckets: one day a page, next_page reads on.
	// Minute buckets, from the raw events: 60 a page by default.
	minutes, err := oai.Admin.Organization.Usage.Completions(ctx, openai.AdminOrganizationUsageCompletionsParams{
		StartTime: day.Add(8*time.Hour + 30*time.Minute).Unix(), BucketWidth: openai.AdminOrganizationUsageCompletionsParamsBucketWidth1m})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(minutes.Data).To(HaveLen(60))
	g.Expect(minutes.HasMore).To(BeTrue())
	g.Expect(minutes.Data[30].StartTime).To(Equal(day.Add(9 * time.Hour).Unix()))
	g.Expect(minutes.Data[30].EndTime).To(Equal(day.Add(9*time.Hour + time.Minute).Unix()))
	g.Expect(minutes.Data[30].Results).To(HaveLen(1))
	g.Expect(minutes.Data[30].Results[0].InputTokens).To(BeEquivalentTo(1000))
	g.Expect(minutes.Data[29].Results).To(BeEmpty())

	paged, err := oai.Admin.Organization.Usage.Completions(ctx, openai.AdminOrganizationUsageCompletionsParams{
		StartTime: day.Unix(), EndTime: openai.Int(day.Add(72 * time.Hour).Unix()), Limit: openai.Int(1)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(paged.Data).To(HaveLen(1))
	g.Expect(paged.HasMore).To(BeTrue())
	next, err := oai.Admin.Organization.Usage.Completions(ctx, openai.AdminOrganizationUsageCompletionsParams{
		StartTime: day.Unix(), EndTime: openai.Int(day.Add(72 * time.Hour).Unix()), Limit: openai.Int(1), Page: openai.String(paged.NextPage)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(next.Data[0].StartTime).To(Equal(day.Add(24 * time.Hour).Unix()))
	// The shape, as OpenAI's reference gives it.
	code, raw := rawJSON(g, hc, base, admin.Status.Key,
		"/v1/organization/usage/completions?start_time="+itoa(day.Unix())+"&end_time="+itoa(day.Add(24*time.Hour).Unix())+"&group_by[]=model")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(raw).To(HaveKeyWithValue("object", "page"))
	g.Expect(raw).To(HaveKeyWithValue("has_more", false))
	g.Expect(raw).To(HaveKeyWithValue("next_page", BeNil()))
	bucket := raw["data"].([]any)[0].(map[string]any)
	g.Expect(bucket).To(HaveKeyWithValue("object", "bucket"))
	result := bucket["results"].([]any)[0].(map[string]any)
	g.Expect(result).To(HaveKeyWithValue("object", "organization.usage.completions.result"))
	g.Expect(result).To(HaveKeyWithValue("model", "MiniMax-M2"))
	g.Expect(result).To(HaveKeyWithValue("project_id", BeNil()), "not grouped by project: null")
	for _, field := range []string{"input_tokens", "output_tokens", "input_cached_tokens", "num_model_requests", "api_key_id", "user_id", "batch"} {
		g.Expect(result).To(HaveKey(field))
	}

	// Costs by project: the exact decimals of the hub's prices.
	costs, err := oai.Admin.Organization.Usage.Costs(ctx, openai.AdminOrganizationUsageCostsParams{
		StartTime: day.Unix(), EndTime: openai.Int(day.Add(48 * time.Hour).Unix()), GroupBy: []string{"project_id"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(costs.Data).To(HaveLen(2))
	g.Expect(costs.Data[0].Results[0].ProjectID).To(Equal("chatbot"))
	g.Expect(costs.Data[0].Results[0].Amount.Value).To(BeNumerically("~", 0.0009, 1e-12))
	g.Expect(costs.Data[0].Results[0].Amount.Currency).To(Equal("usd"))
	code, raw = rawJSON(g, hc, base, admin.Status.Key,
		"/v1/organization/costs?start_time="+itoa(day.Unix())+"&end_time="+itoa(day.Add(24*time.Hour).Unix())+"&group_by=line_item")
	g.Expect(code).To(Equal(http.StatusOK))
	result = raw["data"].([]any)[0].(map[string]any)["results"].([]any)[0].(map[string]any)
	g.Expect(result).To(HaveKeyWithValue("object", "organization.costs.result"))
	g.Expect(result).To(HaveKeyWithValue("line_item", "MiniMax-M2"))
	g.Expect(result["amount"]).To(HaveKeyWithValue("value", 0.0009))

	// Projects.
	projects, err := oai.Admin.Organization.Projects.List(ctx, openai.AdminOrganizationProjectListParams{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(projects.Data).To(HaveLen(2))
	g.Expect(projects.Data[0].ID).To(Equal("chatbot"))
	g.Expect(projects.Data[0].Status).To(Equal("active"))
	created, err := oai.Admin.Organization.Projects.New(ctx, openai.AdminOrganizationProjectNewParams{Name: "Data Science"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(created.ID).To(Equal("data-science"))
	g.Expect(created.Name).To(Equal("Data Science"))
	archived, err := oai.Admin.Organization.Projects.Archive(ctx, "data-science")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(archived.Status).To(Equal("archived"))
	g.Expect(archived.ArchivedAt).NotTo(BeZero())
	projects, err = oai.Admin.Organization.Projects.List(ctx, openai.AdminOrganizationProjectListParams{Limit: openai.Int(1)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(projects.Data).To(HaveLen(1))
	g.Expect(projects.HasMore).To(BeTrue())
	all := []string{}
	for iter := oai.Admin.Organization.Projects.ListAutoPaging(ctx, openai.AdminOrganizationProjectListParams{
		Limit: openai.Int(1), IncludeArchived: openai.Bool(true)}); iter.Next(); {
		all = append(all, iter.Current().ID)
	}
	g.Expect(all).To(Equal([]string{"chatbot", "data-science", "research"}), "the client follows after= through every page")

	// A project's keys: listed by key ID, never with the key; deleted.
	spare := e.createKey(g, "ops@example.com", `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata: {name: spare, namespace: research}
spec: {label: spare}
`)
	keys, err := oai.Admin.Organization.Projects.APIKeys.List(ctx, "research", openai.AdminOrganizationProjectAPIKeyListParams{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys.Data).To(HaveLen(2))
	for _, k := range keys.Data {
		g.Expect(k.RedactedValue).NotTo(ContainSubstring(strings.TrimPrefix(admin.Status.Key, "mhub_"+admin.Status.KeyID)))
		g.Expect(k.Owner.User.Email).To(Equal("ops@example.com"))
	}
	gone, err := oai.Admin.Organization.Projects.APIKeys.Delete(ctx, "research", spare.Status.KeyID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gone.Deleted).To(BeTrue())
	g.Eventually(func() int { return e.call(g, spare.Status.Key) }, 10*time.Second, 100*time.Millisecond).Should(Equal(http.StatusUnauthorized))

	// Users and invites.
	users, err := oai.Admin.Organization.Users.List(ctx, openai.AdminOrganizationUserListParams{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(users.Data).To(BeEmpty(), "nobody has accepted an invitation yet: all are invites")
	invites, err := oai.Admin.Organization.Invites.List(ctx, openai.AdminOrganizationInviteListParams{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(invites.Data).To(HaveLen(3))
	invite, err := oai.Admin.Organization.Invites.New(ctx, openai.AdminOrganizationInviteNewParams{Email: "carol@example.com",
		Role: openai.AdminOrganizationInviteNewParamsRoleReader})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(invite.Email).To(Equal("carol@example.com"))
	g.Expect(string(invite.Role)).To(Equal("reader"))
	g.Expect(string(invite.Status)).To(Equal("pending"))
	carol := &hubv1.Member{}
	g.Expect(e.client.Get(ctx, clientKey(invite.ID), carol)).To(Succeed())
	g.Expect(carol.Spec.Role).To(Equal(hubv1.RoleViewer))
	// Changing a role: a user who accepted; mark carol accepted as the
	// invitation flow would.
	g.Eventually(func() error {
		if err := e.client.Get(ctx, clientKey(invite.ID), carol); err != nil {
			return err
		}
		accepted := metav1.Now()
		carol.Status.AcceptedAt, carol.Status.Phase = &accepted, hubv1.MemberActive
		return e.client.Status().Update(ctx, carol)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func() (int, error) {
		users, err = oai.Admin.Organization.Users.List(ctx, openai.AdminOrganizationUserListParams{})
		return len(users.Data), err
	}, 10*time.Second, 100*time.Millisecond).Should(Equal(1))
	updated, err := oai.Admin.Organization.Users.Update(ctx, invite.ID, openai.AdminOrganizationUserUpdateParams{Role: openai.String("developer")})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(updated.Role).To(Equal("reader"))
	g.Expect(e.client.Get(ctx, clientKey(invite.ID), carol)).To(Succeed())
	g.Expect(carol.Spec.Role).To(Equal(hubv1.RoleDeveloper))
	_, err = oai.Admin.Organization.Users.Update(ctx, invite.ID, openai.AdminOrganizationUserUpdateParams{Role: openai.String("owner")})
	var apiErr *openai.Error
	g.Expect(errors.As(err, &apiErr)).To(BeTrue())
	g.Expect(apiErr.StatusCode).To(Equal(http.StatusBadRequest))
	g.Expect(apiErr.Message).To(ContainSubstring("spec.role"), "no one raises anyone above their own role")
	removed, err := oai.Admin.Organization.Users.Delete(ctx, invite.ID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(removed.Deleted).To(BeTrue())

	// The audit log names the key that acted.
	g.Eventually(func(g Gomega) {
		logs, err := oai.Admin.Organization.AuditLogs.List(ctx, openai.AdminOrganizationAuditLogListParams{
			EventTypes: []string{"invite.sent"}})
		g.Expect(err).NotTo(HaveOccurred())
		found := false
		for _, l := range logs.Data {
			if l.Actor.APIKey.ID == admin.Status.KeyID && l.Actor.APIKey.User.Email == "ops@example.com" {
				found = true
			}
		}
		g.Expect(found).To(BeTrue())
	}, 20*time.Second, 200*time.Millisecond).Should(Succeed())

	// Refusals in OpenAI's error body.
	standard := e.createKey(g, "ops@example.com", `apiVersion: management.hub.minimax.io/v1alpha1
kind: KeyRequest
metadata: {name: calls, namespace: research}
spec: {label: calls}
`)
	code, raw = rawJSON(g, hc, base, standard.Status.Key, "/v1/organization/projects")
	g.Expect(code).To(Equal(http.StatusForbidden))
	g.Expect(raw["error"]).To(HaveKeyWithValue("message", ContainSubstring("use an Admin-scope key")))
	g.Expect(raw["error"]).To(HaveKeyWithValue("type", "invalid_request_error"))
	code, raw = rawJSON(g, hc, base, "mhub_nonsense", "/v1/organization/projects")
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(raw["error"]).To(HaveKeyWithValue("code", "invalid_api_key"))
	code, raw = rawJSON(g, hc, base, admin.Status.Key, "/v1/organization/nope")
	g.Expect(code).To(Equal(http.StatusNotFound))
	g.Expect(raw["error"]).To(HaveKeyWithValue("code", "unknown_url"))
	code, raw = rawJSON(g, hc, base, admin.Status.Key, "/v1/organization/usage/completions?start_time=1&bucket_width=2m")
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(raw["error"]).To(HaveKeyWithValue("param", "bucket_width"))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
