package dashboard

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/access"
)

// module is an entry of the sidebar and its page, with the least role
// that may open it (the module table; ARCHITECTURE.md's role →
// access table). A module the role may not open is left out of the
// sidebar, and its URL answers 403.
type module struct {
	Name string
	// Pattern is the page's route; Link the sidebar's.
	Pattern, Link string
	// Min is the least role that opens the module; with InProjects, a
	// role a project grants counts too (the module shows that project's
	// things only), as in ARCHITECTURE.md's access table: Developer+
	// (assigned projects).
	Min        hubv1.Role
	InProjects bool
	page       func(*Server, http.ResponseWriter, *http.Request, *viewer)
}

// mayOpen says whether v's roles open module m.
func (v *viewer) mayOpen(m module) bool {
	if access.AtLeast(v.Role(), m.Min) {
		return true
	}
	if m.InProjects {
		for _, p := range v.Member.Status.Projects {
			if access.AtLeast(p.Role, m.Min) {
				return true
			}
		}
	}
	return false
}

// modules are the dashboard's modules, in sidebar order.
var modules = []module{
	{Name: "Overview", Pattern: "/{$}", Link: "/", Min: hubv1.RoleViewer, page: (*Server).overview},
	{Name: "API Keys", Pattern: "/keys", Link: "/keys", Min: hubv1.RoleDeveloper, InProjects: true, page: (*Server).keysPage},
	{Name: "Usage", Pattern: "/usage", Link: "/usage", Min: hubv1.RoleViewer, page: (*Server).usagePage},
}

// moduleNamed is the module of a name.
func (s *Server) moduleNamed(name string) module {
	for _, m := range s.modules {
		if m.Name == name {
			return m
		}
	}
	panic("no module " + name)
}

// module serves h, a page of module m, to signed-in members whose role may
// open m.
func (s *Server) module(m module, h func(*Server, http.ResponseWriter, *http.Request, *viewer)) http.HandlerFunc {
	return s.guarded(func(w http.ResponseWriter, r *http.Request, v *viewer) {
		if !v.mayOpen(m) {
			where := ""
			if m.InProjects {
				where = ", in the organization or in a project"
			}
			s.render(w, r, http.StatusForbidden, "problem", s.pageOf(v, ""), problem{Code: http.StatusForbidden,
				Message: m.Name + " is for the " + string(m.Min) + " role and above" + where + "; your role is " + string(v.Role()) + "."})
			return
		}
		h(s, w, r, v)
	}, "")
}

// overviewData is what the overview shows.
type overviewData struct {
	Currency string
	// Caps are the spending caps the member may see, fullest first.
	Caps []capSummary
	// ActiveKeys counts keys that work (Active or Rotating).
	ActiveKeys int
	// Members counts members by phase.
	Members struct{ Active, Invited, Disabled int }
	// Alerts are what needs attention: caps in Warning or Exceeded, and
	// keys that expire within a week.
	Alerts []string
	// RecentLink opens the last week's usage; the overview loads it in
	// (overviewUsage), so that the cached figures show at once.
	RecentLink string
}

// overviewUsageData is the overview's usage section: the last week's
// usage, or, with RecentError, why it cannot be read.
type overviewUsageData struct {
	Recent      *recentUsage
	RecentError string
	RecentLink  string
}

// recentUsage is the overview's chart: the last seven days' calls, by day
// and project.
type recentUsage struct {
	Total mgmtv1alpha1.UsageFigures
	// Chart is the Usage page's chart data (static/usage.js draws it).
	Chart    string
	Currency string
	// Link opens the same view on the Usage page.
	Link string
}

// recentView is the overview chart's question.
var recentView = usageView{Range: "7d", Granularity: string(mgmtv1alpha1.GranularityDay), Group: string(mgmtv1alpha1.DimensionProject)}

// recentLink is the Usage page of the overview's chart.
var recentLink = "/usage?" + recentView.query()

// overviewUsage serves the overview's usage section, which the overview
// loads after it shows (htmx); without JavaScript the overview links to the
// Usage page instead. A failure is the section's only.
func (s *Server) overviewUsage(w http.ResponseWriter, r *http.Request, v *viewer) {
	d := overviewUsageData{RecentLink: recentLink}
	if report, err := s.report(r, v, recentView, reportChart); err != nil {
		_, d.RecentError = refusal(err)
	} else {
		_, chart := usageRows(recentView, report)
		d.Recent = &recentUsage{Total: report.Status.Total, Chart: chart, Currency: report.Status.Currency, Link: recentLink}
	}
	s.render(w, r, http.StatusOK, "overview-usage", s.pageOf(v, "/"), d)
}

type capSummary struct {
	Name, Scope, Spent, Limit, State string
	Percent                          int32
}

// expiringWithin is how soon a key's expiry makes an alert.
const expiringWithin = 7 * 24 * time.Hour

// overview shows this cycle's spend against the caps, the keys that work,
// the team, and what needs attention. Viewers see the whole organization's
// figures, as their role's RBAC lets them read.
func (s *Server) overview(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx := r.Context()
	data := overviewData{Currency: "USD"}
	if org := s.organization(ctx); org != nil && org.Spec.Billing.Currency != "" {
		data.Currency = org.Spec.Billing.Currency
	}
	var caps hubv1.SpendingCapList
	var members hubv1.MemberList
	for _, list := range []client.ObjectList{&caps, &members} {
		if err := s.o.Reader.List(ctx, list, readOnly); err != nil {
			s.unavailable(w, r, err)
			return
		}
	}
	data.addCaps(caps.Items)
	visible, err := s.keyProjects(r, v)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	if err := data.addKeys(v, s.keyFigures, visible, s.o.Clock.Now()); err != nil {
		s.unavailable(w, r, err)
		return
	}
	for _, m := range members.Items {
		switch m.Status.Phase {
		case hubv1.MemberActive:
			data.Members.Active++
		case hubv1.MemberDisabled:
			data.Members.Disabled++
		default:
			data.Members.Invited++
		}
	}
	data.RecentLink = recentLink
	s.render(w, r, http.StatusOK, "overview", s.pageOf(v, "/"), data)
}

// addCaps lists the caps, fullest first, with an alert for each in
// Warning or Exceeded.
func (d *overviewData) addCaps(caps []hubv1.SpendingCap) {
	for _, c := range caps {
		limit := "—"
		if c.Spec.Limit != nil {
			limit = string(*c.Spec.Limit)
		}
		d.Caps = append(d.Caps, capSummary{Name: c.Name, Scope: c.Namespace, Spent: orZero(string(c.Status.Spent)), Limit: limit,
			State: string(c.Status.State), Percent: c.Status.Percent})
		if c.Status.State == hubv1.CapWarning || c.Status.State == hubv1.CapExceeded {
			d.Alerts = append(d.Alerts, fmt.Sprintf("Spending cap %s/%s is at %d%% (%s).", c.Namespace, c.Name,
				c.Status.Percent, c.Status.State))
		}
	}
	slices.SortFunc(d.Caps, func(a, b capSummary) int { return int(b.Percent - a.Percent) })
}

// addKeys counts the organization's keys that work (a figure every role
// may see), with an alert for each that expires within expiringWithin
// among the keys the member may see (visible: project → namespace), whose
// names their role lets them read; the soonest first.
func (d *overviewData) addKeys(v *viewer, keys *keyFigures, visible map[string]string, now time.Time) error {
	namespaces := map[string]bool{}
	for _, ns := range visible {
		namespaces[ns] = true
	}
	count, expiring, err := keys.working(namespaces, now.Add(expiringWithin))
	if err != nil {
		return err
	}
	d.ActiveKeys = count
	for _, k := range expiring {
		d.Alerts = append(d.Alerts, "Key "+k.name.Namespace+"/"+k.name.Name+" expires on "+v.moment(k.at)+".")
	}
	return nil
}

func orZero(s string) string {
	if strings.TrimSpace(s) == "" {
		return "0"
	}
	return s
}
