package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// HashParams are the argon2id cost parameters of password hashes.
type HashParams struct {
	// Time is the number of passes; Memory the memory used, in KiB;
	// Threads the degree of parallelism.
	Time, Memory uint32
	Threads      uint8
}

// DefaultHashParams are RFC 9106's second recommended option (section 4):
// 3 passes over 64 MiB with 4 lanes, for memory-constrained servers.
var DefaultHashParams = HashParams{Time: 3, Memory: 64 * 1024, Threads: 4}

// Lengths of a hash's salt and key, in bytes (RFC 9106 section 4: a
// 128-bit salt, a 256-bit tag).
const (
	saltLength = 16
	keyLength  = 32
)

// MinPasswordLength and MaxPasswordLength bound a password, in bytes
// (NIST SP 800-63B section 3.1.1.2: at least 8 characters, and at least 64
// allowed; the ceiling keeps hashing cheap to ask for).
const (
	MinPasswordLength = 12
	MaxPasswordLength = 256
)

// ErrPasswordPolicy wraps every reason a password is refused.
var ErrPasswordPolicy = errors.New("the password does not meet the policy")

// CheckPasswordPolicy says why a new password is refused, if it is: its
// length only, as NIST SP 800-63B recommends (no composition rules).
func CheckPasswordPolicy(password string) error {
	switch n := len(password); {
	case n < MinPasswordLength:
		return fmt.Errorf("%w: use at least %d characters (a passphrase of a few words is good)", ErrPasswordPolicy, MinPasswordLength)
	case n > MaxPasswordLength:
		return fmt.Errorf("%w: use at most %d bytes", ErrPasswordPolicy, MaxPasswordLength)
	}
	return nil
}

// hashPassword returns the argon2id hash of password in the PHC string
// format ($argon2id$v=19$m=…,t=…,p=…$salt$key, unpadded base64), which
// carries its parameters, so that raising them later leaves old hashes
// verifiable.
func hashPassword(password string, p HashParams) (string, error) {
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// verifyPassword tells whether password matches a hash of hashPassword, in
// time that does not depend on where they differ.
func verifyPassword(password, hash string) (bool, error) {
	p, salt, key, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// parseHash reads a PHC string of argon2id.
func parseHash(hash string) (p HashParams, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("argon2id version %q is not %d", parts[2], argon2.Version)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("argon2id parameters %q: %w", parts[3], err)
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return p, nil, nil, fmt.Errorf("argon2id salt: %w", err)
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(key) == 0 {
		return p, nil, nil, fmt.Errorf("argon2id key: %w", err)
	}
	return p, salt, key, nil
}
