package openaiadmin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"

	"github.com/minimax/platform-hub/internal/auditlog"
	"github.com/minimax/platform-hub/internal/sqldb"
)

// auditLogIDPrefix marks the IDs of audit logs: the entry's place in the
// log, so that after= reads on from it.
const auditLogIDPrefix = "audit_log-"

// auditLog is OpenAI's audit log object. The event's details sit under a
// key named like its type ("project.created": {"id": …}).
type auditLog map[string]any

// eventTypes names the hub's changes in OpenAI's event types; kinds it has
// none for are named "<kind>.<action>d" in lower case (spendingcap.updated).
func eventType(e auditlog.Entry) string {
	past := map[string]string{auditlog.ActionCreate: "created", auditlog.ActionUpdate: "updated", auditlog.ActionDelete: "deleted"}[e.Action]
	switch e.Kind {
	case "APIKey":
		return "api_key." + past
	case "Project":
		for _, c := range e.Changes {
			if c.Field == "spec.archived" && c.New == "true" {
				return "project.archived"
			}
		}
		return "project." + past
	case "Member":
		return map[string]string{auditlog.ActionCreate: "invite.sent", auditlog.ActionUpdate: "user.updated",
			auditlog.ActionDelete: "user.deleted"}[e.Action]
	case "Organization":
		return "organization." + past
	}
	return strings.ToLower(e.Kind) + "." + past
}

func auditLogOf(e auditlog.Entry) auditLog {
	const typ, user = "type", "user"
	person := map[string]any{"id": e.Actor, "email": e.Actor}
	actor := map[string]any{typ: "session", "session": map[string]any{user: person}}
	if e.KeyID != "" {
		actor = map[string]any{typ: "api_key", "api_key": map[string]any{"id": e.KeyID, typ: user, user: person}}
	}
	id := e.Name
	if e.Namespace != "" {
		id = e.Namespace + "/" + e.Name
	}
	details := map[string]any{"id": id}
	if len(e.Changes) > 0 {
		requested := map[string]string{}
		for _, c := range e.Changes {
			requested[c.Field] = c.New
		}
		details["changes_requested"] = requested
	}
	event := eventType(e)
	return auditLog{"id": auditLogIDPrefix + sqldb.Cursor{Time: e.Time, ID: e.ID}.Token(), typ: event,
		"effective_at": e.Time.Unix(), "actor": actor, event: details}
}

// auditLogs answers GET /v1/organization/audit_logs: the hub's audit log,
// oldest first, paged with after and limit; filtered by effective_at
// (gt, gte, lt, lte), one actor email, and event types.
func (h *Handler) auditLogs(w http.ResponseWriter, r *http.Request) {
	u, _ := genericapirequest.UserFrom(r.Context())
	decision, _, err := h.Authorizer.Authorize(r.Context(), authorizer.AttributesRecord{User: u, Verb: "list", //nolint:goconst // a verb, not the list object
		APIGroup: "management.hub.minimax.io", APIVersion: "v1alpha1", Resource: "auditevents", ResourceRequest: true})
	if err != nil || decision != authorizer.DecisionAllow {
		writeError(w, http.StatusForbidden, "Reading the audit log needs the Admin or Owner role", "invalid_request_error", "",
			"insufficient_permissions")
		return
	}
	limit, ok := limitParam(w, r, 20, 100)
	if !ok {
		return
	}
	q := AuditQuery{Limit: limit}
	if after := r.URL.Query().Get("after"); after != "" {
		q.Continue = strings.TrimPrefix(after, auditLogIDPrefix)
	}
	if !effectiveAt(w, r, &q) {
		return
	}
	switch emails := values(r, "actor_emails"); len(emails) {
	case 0:
	case 1:
		q.Actor = emails[0]
	default:
		invalid(w, "actor_emails", "the hub filters by one actor email at a time")
		return
	}
	entries, next, err := h.Usage.AuditPage(r.Context(), q)
	if err != nil {
		fail(w, err)
		return
	}
	types := values(r, "event_types")
	items := make([]auditLog, 0, len(entries))
	for _, e := range entries {
		if len(types) == 0 || slices.Contains(types, eventType(e)) {
			items = append(items, auditLogOf(e))
		}
	}
	out := list[auditLog]{Object: listObject, Data: items, HasMore: next != ""}
	if n := len(items); n > 0 {
		first, last := items[0]["id"].(string), items[n-1]["id"].(string)
		out.FirstID, out.LastID = &first, &last
	} else if next != "" {
		// Every entry of the page was filtered out: last_id still reads on.
		last := auditLogIDPrefix + next
		out.LastID = &last
	}
	writeJSON(w, http.StatusOK, out)
}

// effectiveAt reads effective_at[gt|gte|lt|lte] (Unix seconds) into the
// query's range.
func effectiveAt(w http.ResponseWriter, r *http.Request, q *AuditQuery) bool {
	for _, op := range []string{"gt", "gte", "lt", "lte"} {
		v := r.URL.Query().Get("effective_at[" + op + "]")
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			invalid(w, "effective_at", "effective_at["+op+"] must be Unix seconds")
			return false
		}
		t := time.Unix(n, 0)
		switch op {
		case "gt":
			q.From = t.Add(time.Second)
		case "gte":
			q.From = t
		case "lt":
			q.To = t
		case "lte":
			q.To = t.Add(time.Second)
		}
	}
	return true
}
