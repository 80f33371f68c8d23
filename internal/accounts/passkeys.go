package accounts

import (
	"context"
	"fmt"
	"time"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// Passkey is a WebAuthn credential (W3C Web Authentication, Level 3) an
// account signs in with as its second factor. The store keeps what the
// dashboard's WebAuthn library records of it (its public key, signature
// counter and flags) without reading it: a public key is no secret, so it
// is not sealed.
type Passkey struct {
	// ID is the credential ID, unpadded base64url (RFC 4648 section 5).
	ID string
	// Name is what the member calls it ("Passkey", "YubiKey 5").
	Name string
	// Credential is the library's record of the credential, JSON.
	Credential []byte
	// Created and LastUsed are when it was added and last signed in with
	// (zero when never).
	Created, LastUsed time.Time
}

// HasSecondFactor says whether the account has a second factor set up: a
// confirmed TOTP secret, or a passkey.
func (a Account) HasSecondFactor() bool { return !a.TOTPConfirmed.IsZero() || a.Passkeys > 0 }

// AddPasskey implements Store.
func (s *sqlStore) AddPasskey(ctx context.Context, email string, p Passkey) ([]string, error) {
	account := hubv1.EmailKey(email)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	now := s.now().UnixMicro()
	// Writing the account's row first holds it (PostgreSQL locks the row;
	// SQLite writes one transaction at a time): a second registration at
	// the same moment waits, then sees this one.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_accounts (email, updated) VALUES (%s, %s)
		ON CONFLICT (email) DO UPDATE SET updated = excluded.updated`, s.p(1), s.p(2)), account, now); err != nil {
		return nil, fmt.Errorf("adding a passkey to %s: %w", email, err)
	}
	// A passkey is the account's first second factor, or none: another
	// beside one needs the current one (the Settings module).
	var confirmed int64
	var passkeys int
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT totp_confirmed, (SELECT COUNT(*) FROM dashboard_passkeys WHERE email = %s)
		FROM dashboard_accounts WHERE email = %s`, s.p(1), s.p(2)), account, account).Scan(&confirmed, &passkeys); err != nil {
		return nil, fmt.Errorf("adding a passkey to %s: %w", email, err)
	}
	if confirmed != 0 || passkeys != 0 {
		return nil, ErrHasSecondFactor
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_passkeys (email, id, name, credential, created, last_used)
		VALUES (%s, %s, %s, %s, %s, 0)`, s.p(1), s.p(2), s.p(3), s.p(4), s.p(5)), account, p.ID, p.Name, string(p.Credential), now); err != nil {
		return nil, fmt.Errorf("adding a passkey to %s: %w", email, err)
	}
	codes, err := s.replaceRecoveryCodes(ctx, tx, account)
	if err != nil {
		return nil, err
	}
	return codes, tx.Commit()
}

// Passkeys implements Store.
func (s *sqlStore) Passkeys(ctx context.Context, email string) ([]Passkey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, credential, created, last_used FROM dashboard_passkeys WHERE email = `+
		s.p(1)+` ORDER BY created, id`, hubv1.EmailKey(email))
	if err != nil {
		return nil, fmt.Errorf("reading the passkeys of %s: %w", email, err)
	}
	defer func() { _ = rows.Close() }()
	var out []Passkey
	for rows.Next() {
		var p Passkey
		var credential string
		var created, used int64
		if err := rows.Scan(&p.ID, &p.Name, &credential, &created, &used); err != nil {
			return nil, fmt.Errorf("reading the passkeys of %s: %w", email, err)
		}
		p.Credential, p.Created = []byte(credential), time.UnixMicro(created).UTC()
		if used != 0 {
			p.LastUsed = time.UnixMicro(used).UTC()
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PasskeyUsed implements Store.
func (s *sqlStore) PasskeyUsed(ctx context.Context, email, id string, credential []byte) error {
	_, err := s.db.ExecContext(ctx, fmt.Sprintf(`UPDATE dashboard_passkeys SET credential = %s, last_used = %s WHERE email = %s AND id = %s`,
		s.p(1), s.p(2), s.p(3), s.p(4)), string(credential), s.now().UnixMicro(), hubv1.EmailKey(email), id)
	if err != nil {
		return fmt.Errorf("recording the use of a passkey of %s: %w", email, err)
	}
	return nil
}
