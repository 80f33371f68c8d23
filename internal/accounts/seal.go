package accounts

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// SealingKeyLength is the length of the key that seals second-factor
// secrets, in bytes (AES-256).
const SealingKeyLength = 32

// Sealer encrypts secrets that must be read back (TOTP seeds in the store,
// the dashboard's single sign-on state in a cookie) with AES-256-GCM, so
// that a copy of the database, or a cookie, alone does not give them away.
// Each sealed value is bound to a context (the additional data: an
// account's email, or a use), so a value copied elsewhere does not open.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer of a key of SealingKeyLength bytes.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != SealingKeyLength {
		return nil, fmt.Errorf("the sealing key must be %d bytes, not %d", SealingKeyLength, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext for a context, as unpadded base64 (RFC 4648
// section 4) of a random nonce then the ciphertext.
func (s *Sealer) Seal(context, plaintext string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
	return base64.RawStdEncoding.EncodeToString(sealed), nil
}

// Open decrypts what Seal made for the same context; an error says the
// value is malformed, or was sealed for another context or key.
func (s *Sealer) Open(context, sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("a sealed secret is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return "", errors.New("a sealed secret does not open with this sealing key (was the key changed?)")
	}
	return string(plain), nil
}
