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
		"/%5Cevil.example":      "/",
		"/%5cevil.example":      "/",
		"/%09/evil.example":     "/",
		"/%255Cevil.example":    "/%255Cevil.example",
		"/keys/a%20b":           "/keys/a%20b",
	} {
		got := localPath(next)
		if got != want {
			t.Errorf("localPath(%q) = %q, want %q", next, got, want)
		}
		if again := localPath(got); again != got {
			t.Errorf("localPath(localPath(%q)) = %q, not %q: a second pass decodes once more", next, again, got)
		}
	}
}
