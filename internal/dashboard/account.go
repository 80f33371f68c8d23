package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The member's own account page, and the time zone every page shows times
// in: the one the member chose (kept with their account), else the
// Organization's billing time zone, else UTC.

// commonZones are offered as the time zone field's suggestions; any IANA
// name is accepted.
var commonZones = []string{
	"UTC", "America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York", "America/Sao_Paulo",
	"Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Istanbul", "Africa/Lagos", "Africa/Johannesburg",
	"Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Tokyo", "Asia/Seoul",
	"Australia/Sydney", "Pacific/Auckland",
}

// zone is where a member with a chosen time zone (an IANA name, or empty)
// reads times.
func (s *Server) zone(ctx context.Context, chosen string) *time.Location {
	if loc, err := loadZone(chosen); err == nil && chosen != "" {
		return loc
	}
	return s.organizationZone(ctx)
}

// organizationZone is the Organization's billing time zone, or UTC.
func (s *Server) organizationZone(ctx context.Context) *time.Location {
	if org := s.organization(ctx); org != nil && org.Spec.Billing.TimeZone != "" {
		if loc, err := loadZone(org.Spec.Billing.TimeZone); err == nil {
			return loc
		}
	}
	return time.UTC
}

// loadZone loads an IANA time zone, once per name (each page asks);
// "Local" (the server's zone, which means nothing to the reader) is not
// one.
func loadZone(name string) (*time.Location, error) {
	if strings.EqualFold(name, "Local") {
		return nil, errNotAZone
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err == nil && len(name) <= 64 {
		zones.Store(name, loc)
	}
	return loc, err
}

// zones caches loaded time zones by name (there are a few hundred).
var zones sync.Map

var errNotAZone = errors.New("not an IANA time zone")

// date and moment format an instant for the member: a day, or a day and a
// time with its zone's abbreviation.
func (v *viewer) date(t time.Time) string   { return t.In(v.Zone).Format("2 Jan 2006") }
func (v *viewer) moment(t time.Time) string { return t.In(v.Zone).Format("2 Jan 2006 15:04 MST") }

// instant is moment of an RFC 3339 time from a URL, or the text as it came
// when it is not one.
func (v *viewer) instant(s string) string {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return v.moment(t)
	}
	return s
}

// accountData is what the account page shows.
type accountData struct {
	Email, Role, Methods string
	// Zone is the chosen time zone (empty: the organization's, OrgZone).
	Zone, OrgZone string
	Zones         []string
	Error, Notice string
}

func (s *Server) accountData(r *http.Request, v *viewer) accountData {
	return accountData{Email: v.Member.Spec.Email, Role: string(v.Role()), Methods: describeMethods(v.Session.Methods),
		Zone: v.Session.TimeZone, OrgZone: s.organizationZone(r.Context()).String(), Zones: commonZones}
}

// accountPage shows the member's account: who they are, how they signed
// in, and their time zone.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	data := s.accountData(r, v)
	if r.URL.Query().Get("saved") == "zone" {
		data.Notice = "Times now show in " + v.Zone.String() + "."
	}
	s.render(w, r, http.StatusOK, "account", s.pageOf(v, "/account"), data)
}

// setTimeZone sets the member's time zone: an IANA name, or empty for the
// organization's.
func (s *Server) setTimeZone(w http.ResponseWriter, r *http.Request, v *viewer) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	name := strings.TrimSpace(r.PostFormValue("zone"))
	if _, err := loadZone(name); err != nil || len(name) > 64 {
		data := s.accountData(r, v)
		data.Zone = name
		data.Error = "“" + name + "” is not a time zone. Use an IANA name such as Europe/Berlin or America/New_York, " +
			"or leave the field empty for the organization's."
		s.render(w, r, http.StatusBadRequest, "account", s.pageOf(v, "/account"), data)
		return
	}
	if err := s.o.Accounts.SetTimeZone(r.Context(), v.Session.Email, name); err != nil {
		s.unavailable(w, r, err)
		return
	}
	http.Redirect(w, r, "/account?saved=zone", http.StatusSeeOther)
}

// describeMethods says how a session signed in, for people.
func describeMethods(methods []string) string {
	var parts []string
	for _, m := range methods {
		switch m {
		case "pwd":
			parts = append(parts, "password")
		case "fed":
			parts = append(parts, "single sign-on")
		case "otp":
			parts = append(parts, "authenticator code")
		}
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, " and ")
}
