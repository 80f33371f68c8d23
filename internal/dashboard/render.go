package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// page is what the layout needs of a signed-in member: who they are and
// the modules of the sidebar.
type page struct {
	Email, Role string
	Modules     []moduleLink
	// Zone is where the member reads times.
	Zone *time.Location
	// Current is the path of the module shown, or of the account page.
	Current string
}

// Time formats an instant to the second in the member's time zone.
func (p *page) Time(t time.Time) string { return t.In(p.Zone).Format("2006-01-02 15:04:05") }

// ZoneName names the member's time zone, for column headings.
func (p *page) ZoneName() string { return p.Zone.String() }

// moduleLink is an entry of the sidebar.
type moduleLink struct {
	Name, Path string
	Current    bool
}

// pageOf is the layout of v's pages, with the module at path marked; nil
// for a sign-in that is not done (no sidebar).
func (s *Server) pageOf(v *viewer, path string) *page {
	if v == nil || v.Session.Stage != "" {
		return nil
	}
	p := &page{Email: v.Member.Spec.Email, Role: string(v.Role()), Zone: v.Zone, Current: path}
	for _, m := range s.modules {
		if v.mayOpen(m) {
			p.Modules = append(p.Modules, moduleLink{Name: m.Name, Path: m.Link, Current: m.Link == path})
		}
	}
	return p
}

// view is the data of every template: the layout's and the page's own.
type view struct {
	Page *page
	Form any
}

// parseTemplates parses each page with the layout.
func (s *Server) parseTemplates() error {
	layout, err := template.New("layout.html").Funcs(template.FuncMap{"lower": strings.ToLower}).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return err
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return err
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFiles, name)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", name, err)
		}
		s.pages[base] = t
	}
	return nil
}

// render writes a page. It renders into a buffer first, so that a failing
// template answers 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page, form any) {
	t, ok := s.pages[name]
	if !ok {
		s.unavailable(w, r, fmt.Errorf("no page %q", name))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", view{Page: p, Form: form}); err != nil {
		s.o.Log.Error(err, "Rendering a dashboard page", "page", name)
		http.Error(w, "The page could not be shown.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// problem is what the error page shows.
type problem struct {
	Code    int
	Message string
}

// fail answers with an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, message string) {
	s.render(w, r, code, "problem", nil, problem{Code: code, Message: message})
}

// unavailable answers 503 for a failure of the hub's own parts (the
// database, the API server), logged; the page says to try again.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.o.Log.Error(err, "Serving a dashboard page", "path", r.URL.Path)
	w.Header().Set("Retry-After", "5")
	s.fail(w, r, http.StatusServiceUnavailable, "The hub cannot answer right now. Try again in a moment.")
}

// contentSecurityPolicy allows the dashboard's own scripts, styles and
// images (and data: images: QR codes), nothing inline, no framing, and
// forms that post only back to the dashboard.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every answer carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store") // pages hold account data
		}
		next.ServeHTTP(w, r)
	})
}

// staticHandler serves the embedded static files, cacheable for an hour.
func staticHandler(files fs.FS) http.Handler {
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	})
}
