package keys

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestNewKeyParses(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if len(k.Reveal()) != Length {
			t.Fatalf("key length %d, want %d", len(k.Reveal()), Length)
		}
		if seen[k.Reveal()] {
			t.Fatal("duplicate key")
		}
		seen[k.Reveal()] = true

		parsed, err := Parse(k.Reveal())
		if err != nil {
			t.Fatalf("Parse of a new key: %v", err)
		}
		if parsed.ID() != k.ID() || parsed.Digest() != k.Digest() {
			t.Fatalf("parsed key differs from the generated one")
		}
		if !regexp.MustCompile(Pattern).MatchString("token=" + k.Reveal() + ";") {
			t.Fatalf("Pattern does not find the key in a text")
		}
	}
}

func TestParseRejects(t *testing.T) {
	k, err := NewWithID("AbCdEf0123")
	if err != nil {
		t.Fatal(err)
	}
	good := k.Reveal()
	tests := map[string]struct {
		in   string
		want error
	}{
		"empty":              {"", ErrMalformed},
		"truncated":          {good[:len(good)-1], ErrMalformed},
		"extended":           {good + "a", ErrMalformed},
		"other prefix":       {"sk-x" + good[4:], ErrMalformed},
		"non-base62":         {good[:20] + "-" + good[21:], ErrMalformed},
		"with whitespace":    {" " + good[1:], ErrMalformed},
		"wrong checksum":     {good[:len(good)-1] + flip(good[len(good)-1]), ErrChecksum},
		"changed secret":     {good[:30] + flip(good[30]) + good[31:], ErrChecksum},
		"changed key ID":     {good[:6] + flip(good[6]) + good[7:], ErrChecksum},
		"swapped characters": {good[:20] + string(good[21]) + string(good[20]) + good[22:], ErrChecksum},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if tt.in == good {
				t.Skip("the change happened to be a no-op")
			}
			_, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), good[len(Prefix)+IDLength+1:]) {
				t.Fatalf("error reveals the key")
			}
		})
	}
}

func TestDigestAndMatches(t *testing.T) {
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	d := k.Digest()
	if !strings.HasPrefix(d, DigestPrefix) || len(d) != len(DigestPrefix)+64 {
		t.Fatalf("digest %q is not sha256:<64 hex>", d)
	}
	if !Matches(k.Reveal(), d) {
		t.Fatal("a key does not match its own digest")
	}
	other, _ := New()
	if Matches(other.Reveal(), d) {
		t.Fatal("another key matches the digest")
	}
}

func TestKeyRedactsItself(t *testing.T) {
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	secret := k.Reveal()[len(Prefix)+IDLength+1:]
	js, _ := json.Marshal(struct{ K Key }{k})
	for _, s := range []string{
		k.String(), fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %q %x", k, k, k, k, k, k),
		fmt.Sprintf("%v", []Key{k}), string(js),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, k.Reveal()) {
			t.Fatalf("printed key reveals the secret: %s", s)
		}
		if !strings.Contains(s, k.ID()) {
			t.Fatalf("printed key lost its public ID: %s", s)
		}
	}
}

// FuzzParse: parsing never panics, and whatever parses round-trips.
func FuzzParse(f *testing.F) {
	k, _ := New()
	f.Add(k.Reveal())
	f.Add("")
	f.Add(Prefix)
	f.Add(strings.Repeat("a", Length))
	f.Fuzz(func(t *testing.T, s string) {
		parsed, err := Parse(s)
		if err != nil {
			return
		}
		if parsed.Reveal() != s || parsed.ID() != s[len(Prefix):len(Prefix)+IDLength] {
			t.Fatalf("Parse(%q) did not round-trip", s)
		}
	})
}

// FuzzOneCharacterChange: every change of one character fails the checksum
// (or the format).
func FuzzOneCharacterChange(f *testing.F) {
	f.Add(uint8(0), byte('a'), uint64(1))
	f.Add(uint8(Length-1), byte('Z'), uint64(2))
	f.Add(uint8(20), byte('0'), uint64(3))
	f.Fuzz(func(t *testing.T, pos uint8, c byte, seed uint64) {
		k, err := NewWithID(idFromSeed(seed))
		if err != nil {
			t.Fatal(err)
		}
		s := []byte(k.Reveal())
		i := int(pos) % len(s)
		if s[i] == c {
			return
		}
		s[i] = c
		if _, err := Parse(string(s)); err == nil {
			t.Fatalf("changing position %d to %q still parses", i, c)
		}
	})
}

// TestEveryOneCharacterChangeFails checks exhaustively, for a few keys, what
// the fuzz test samples.
func TestEveryOneCharacterChangeFails(t *testing.T) {
	for range 5 {
		k, err := New()
		if err != nil {
			t.Fatal(err)
		}
		s := []byte(k.Reveal())
		for i := range s {
			orig := s[i]
			for c := 0; c < 256; c++ {
				if byte(c) == orig {
					continue
				}
				s[i] = byte(c)
				if _, err := Parse(string(s)); err == nil {
					t.Fatalf("changing position %d from %q to %q still parses", i, orig, byte(c))
				}
			}
			s[i] = orig
		}
	}
}

func idFromSeed(seed uint64) string {
	var b [IDLength]byte
	for i := range b {
		b[i] = alphabet[seed%62]
		seed = seed/62 + uint64(i)*7919
	}
	return string(b[:])
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// BenchmarkNew measures key generation, next to reading the same number of
// random bytes as the baseline.
func BenchmarkNew(b *testing.B) {
	b.Run("keys.New", func(b *testing.B) {
		for b.Loop() {
			if _, err := New(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-rand-read", func(b *testing.B) {
		buf := make([]byte, IDLength+SecretLength)
		for b.Loop() {
			_, _ = rand.Read(buf)
		}
	})
}

// BenchmarkParse measures validating a key (format and checksum) and
// computing its digest, what a gateway does per request.
func BenchmarkParse(b *testing.B) {
	k, _ := New()
	s := k.Reveal()
	for b.Loop() {
		parsed, err := Parse(s)
		if err != nil {
			b.Fatal(err)
		}
		_ = parsed.Digest()
	}
}

func TestRedact(t *testing.T) {
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`admission webhook "x" denied: data.api-key=%s; again:%s.`, k.Reveal(), k.Reveal())
	got := Redact(text)
	if strings.Contains(got, secretOf(k)) {
		t.Fatalf("Redact left the secret in %q", got)
	}
	want := fmt.Sprintf(`admission webhook "x" denied: data.api-key=%s; again:%s.`, k, k)
	if got != want {
		t.Fatalf("Redact = %q, want %q", got, want)
	}
	if plain := "no keys here, mhub_ alone"; Redact(plain) != plain {
		t.Fatalf("Redact changed a text without keys")
	}
}

func secretOf(k Key) string {
	return k.Reveal()[len(Prefix)+IDLength+1:]
}

// TestRedactBase64: a key in a Secret's data, as an error from a Secret
// update quotes it (base64 in JSON), is redacted at any offset within the
// encoded value and in either alphabet; other base64 is left alone.
func TestRedactBase64(t *testing.T) {
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range []string{
		k.Reveal(),
		"x" + k.Reveal(),
		`{"api_key":"` + k.Reveal() + `"}`,
		"OPENAI_API_KEY=" + k.Reveal() + "\n",
	} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
			encoded := enc.EncodeToString([]byte(value))
			text := `Secret "k" is invalid: {"data":{"api-key":"` + encoded + `"}}`
			got := Redact(text)
			if strings.Contains(got, encoded) || !strings.Contains(got, "[redacted base64]") {
				t.Errorf("Redact(%q) = %q", text, got)
			}
		}
	}
	innocent := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("certificate bytes, not a key. ", 5)))
	if got := Redact("ca.crt: " + innocent); got != "ca.crt: "+innocent {
		t.Errorf("Redact changed base64 without a key: %q", got)
	}

	var out strings.Builder
	w := RedactingWriter(&out)
	line := `{"msg":"Reconciler error","error":"` + base64.StdEncoding.EncodeToString([]byte(k.Reveal())) + ` and ` + k.Reveal() + `"}` + "\n"
	if n, err := w.Write([]byte(line)); err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if strings.Contains(out.String(), secretOf(k)) || strings.Contains(out.String(), base64.StdEncoding.EncodeToString([]byte(k.Reveal()))) {
		t.Fatalf("the writer let key material through: %q", out.String())
	}
}
