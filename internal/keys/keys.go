// Package keys defines the format of Platform Hub API keys and the operations
// on them: generation, parsing with checksum validation, and digests.
//
// A key looks like this (the example's checksum is deliberately wrong):
//
//	mhub_4fZq8Kd2Lm_V1bq0W3kYc8rT5uN2xA7pJd9sE4hG6fQ000000
//	     ^ key ID   ^ secret (32 characters)        ^ checksum
//
// Its parts:
//   - the fixed prefix "mhub_" lets secret scanners (GitHub, GitLab,
//     trufflehog) find leaked keys with the published Pattern;
//   - the key ID (10 base62 characters) is public: it names the key in
//     status, logs, metrics and usage records;
//   - the secret is 32 base62 characters from crypto/rand: log2(62^32) is
//     about 190.5 bits of entropy;
//   - the checksum is the CRC-32 (IEEE) of everything before it, as 6 base62
//     digits, so a mistyped or truncated key is refused without a lookup. A
//     CRC-32 detects every error confined to 32 consecutive bits, so every
//     change of one character is detected.
//
// The design follows GitHub's token format. The hub stores only the SHA-256
// digest of a key; the plaintext exists in the key's Secret and nowhere else.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"regexp"
	"strings"
)

const (
	// Prefix starts every key.
	Prefix = "mhub_"
	// IDLength is the length of the public key ID.
	IDLength = 10
	// SecretLength is the length of the secret part.
	SecretLength = 32
	// ChecksumLength is the length of the checksum.
	ChecksumLength = 6
	// Length is the length of a whole key.
	Length = len(Prefix) + IDLength + 1 + SecretLength + ChecksumLength

	// DigestPrefix starts every digest, naming its algorithm.
	DigestPrefix = "sha256:"

	alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Pattern matches a key anywhere in a text; secret scanners use it.
const Pattern = `\bmhub_[0-9A-Za-z]{10}_[0-9A-Za-z]{38}\b`

// IDPattern matches a public key ID.
const IDPattern = `^[0-9A-Za-z]{10}$`

var (
	keyRegexp      = regexp.MustCompile("^" + strings.TrimPrefix(strings.TrimSuffix(Pattern, `\b`), `\b`) + "$")
	idRegexp       = regexp.MustCompile(IDPattern)
	anywhereRegexp = regexp.MustCompile(`mhub_([0-9A-Za-z]{10})_[0-9A-Za-z]{38}`)
)

// base64Run matches text that may be base64 (standard or URL alphabet)
// long enough to hold a key: 54 bytes are 72 characters.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/_-]{72,}={0,2}`)

// Redact replaces every key in a text with its redacted form, keeping the
// public key ID, and every run of base64 that decodes to text holding a key
// (a Secret's data, as an error from a Secret update quotes it) with
// "[redacted base64]". Use it on text that may quote what was sent to
// another system before logging or storing it.
func Redact(text string) string {
	text = anywhereRegexp.ReplaceAllString(text, Prefix+"${1}_[redacted]")
	if len(text) < 72 {
		return text
	}
	return base64Run.ReplaceAllStringFunc(text, func(run string) string {
		if base64HoldsKey(run) {
			return "[redacted base64]"
		}
		return run
	})
}

// base64HoldsKey decodes run from each of its first four characters (the
// run may start mid-quantum) in both alphabets, and looks for a key.
func base64HoldsKey(run string) bool {
	run = strings.TrimRight(run, "=")
	for start := range 4 {
		s := run[start:]
		if len(s)%4 == 1 { // no quantum ends in one character
			s = s[:len(s)-1]
		}
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil && anywhereRegexp.Match(b) {
				return true
			}
		}
	}
	return false
}

// RedactingWriter passes each write to w through [Redact]. Loggers that
// write one entry per call (zap does) use it so that no log line carries a
// key, in either form, whatever a message or an error quotes.
func RedactingWriter(w io.Writer) io.Writer { return redactingWriter{w} }

type redactingWriter struct{ w io.Writer }

func (r redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ErrMalformed is returned for a string that is not a well-formed key. Errors
// never contain the string itself, which may be a real key with a typo.
var ErrMalformed = errors.New("not a Platform Hub API key")

// ErrChecksum is returned for a key whose checksum does not match.
var ErrChecksum = errors.New("API key checksum mismatch (mistyped or truncated key)")

// Key is an API key in plaintext. It redacts itself when printed, logged or
// marshalled; Reveal returns the plaintext for the one place that needs it,
// the key's Secret.
type Key struct {
	id        string
	plaintext string
}

// New generates a key with a random ID and secret.
func New() (Key, error) {
	id, err := randomString(IDLength)
	if err != nil {
		return Key{}, err
	}
	return NewWithID(id)
}

// NewWithID generates a key with the given public ID and a random secret.
func NewWithID(id string) (Key, error) {
	if !idRegexp.MatchString(id) {
		return Key{}, fmt.Errorf("key ID must be %d base62 characters", IDLength)
	}
	secret, err := randomString(SecretLength)
	if err != nil {
		return Key{}, err
	}
	body := Prefix + id + "_" + secret
	return Key{id: id, plaintext: body + checksum(body)}, nil
}

// NewID returns a random public key ID.
func NewID() (string, error) {
	return randomString(IDLength)
}

// Parse checks the format and checksum of a key.
func Parse(s string) (Key, error) {
	if len(s) != Length || !keyRegexp.MatchString(s) {
		return Key{}, ErrMalformed
	}
	body, sum := s[:Length-ChecksumLength], s[Length-ChecksumLength:]
	if subtle.ConstantTimeCompare([]byte(checksum(body)), []byte(sum)) != 1 {
		return Key{}, ErrChecksum
	}
	return Key{id: s[len(Prefix) : len(Prefix)+IDLength], plaintext: s}, nil
}

// ID returns the public key ID.
func (k Key) ID() string { return k.id }

// Digest returns the key's SHA-256 digest, "sha256:" and 64 hex digits.
func (k Key) Digest() string { return Digest(k.plaintext) }

// Reveal returns the plaintext. Call it only to write the key where it must
// be: the key's Secret, or the one response that creates it.
func (k Key) Reveal() string { return k.plaintext }

// IsZero reports whether k holds no key.
func (k Key) IsZero() bool { return k.plaintext == "" }

// String redacts the secret.
func (k Key) String() string {
	if k.IsZero() {
		return ""
	}
	return Prefix + k.id + "_[redacted]"
}

// GoString redacts the secret in %#v.
func (k Key) GoString() string { return "keys.Key{" + k.String() + "}" }

// Format redacts the secret in every fmt verb.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// MarshalText redacts the secret in JSON, YAML and structured logs.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Digest returns the SHA-256 digest of a key's plaintext.
func Digest(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return DigestPrefix + hex.EncodeToString(sum[:])
}

// Matches reports, in constant time, whether plaintext has the given digest.
func Matches(plaintext, digest string) bool {
	return subtle.ConstantTimeCompare([]byte(Digest(plaintext)), []byte(digest)) == 1
}

// checksum encodes the CRC-32 of body as ChecksumLength base62 digits.
func checksum(body string) string {
	n := crc32.ChecksumIEEE([]byte(body))
	var out [ChecksumLength]byte
	for i := ChecksumLength - 1; i >= 0; i-- {
		out[i] = alphabet[n%62]
		n /= 62
	}
	return string(out[:])
}

// randomString returns n base62 characters from crypto/rand. Bytes of 248 or
// more are rejected so that every character is equally likely.
func randomString(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("reading random bytes: %w", err)
		}
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out), nil
}
