package dashboard

import "testing"

// TestLocalPath: next= keeps the browser on this site, whatever the
// spelling of another one.
func TestLocalPath(t *testing.T) {
	for next, want := range map[string]string{
		"":                      "/",
		"/":                     "/",
		"/keys":                 "/keys",
		"/usage?group=KeyID":    "/usage?group=KeyID",
		"/keys/../usage":        "/usage",
		"//evil.example":        "/",
		"/./\\evil.example":     "/",
		"/\\evil.example":       "/",
		"\\\\evil.example":      "/",
		"/.//evil.example":      "/evil.example",
		"https://evil.example/": "/",
		"javascript:alert(1)":   "/",
		"keys":                  "/",
		"/%2F%2Fevil.example":   "/evil.example",
		"/ok\r\nLocation: x":    "/",
	} {
		if got := localPath(next); got != want {
			t.Errorf("localPath(%q) = %q, want %q", next, got, want)
		}
	}
}
