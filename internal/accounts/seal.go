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

// sealer encrypts the secrets the store must read back (TOTP seeds) with
// AES-256-GCM, so that a copy of the database alone does not give them
// away. Each sealed value is bound to its account (the email is the
// additional data), so a value copied onto another account does not open.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
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
	return &sealer{aead: aead}, nil
}

// seal encrypts plaintext for account, as base64 of nonce then ciphertext.
func (s *sealer) seal(account, plaintext string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(account))
	return base64.RawStdEncoding.EncodeToString(sealed), nil
}

// open decrypts what seal made for account.
func (s *sealer) open(account, sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("a sealed secret is malformed")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(account))
	if err != nil {
		return "", errors.New("a sealed secret does not open with this sealing key (was the key changed?)")
	}
	return string(plain), nil
}
