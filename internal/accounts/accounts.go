// Package accounts keeps the dashboard's own sign-in records in the
// server's database: each member's password (an argon2id hash), their
// second factor (a TOTP secret, sealed with AES-256-GCM, and one-time
// recovery codes, hashed), the dashboard's server-side sessions (by the
// SHA-256 of the session token: the token itself lives only in the
// browser's cookie), and counts of failed sign-ins for throttling.
//
// Who a member is (role, groups, disabled) stays on the Member resource;
// accounts are keyed by its email, in the form hubv1.EmailKey compares.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"k8s.io/utils/clock"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/sqldb"
)

// Store keeps accounts, sessions and sign-in failures. Its methods are
// safe for concurrent use, by several replicas on PostgreSQL too.
type Store interface {
	// SetPassword sets an account's password, creating the account. The
	// password must pass CheckPasswordPolicy.
	SetPassword(ctx context.Context, email, password string) error
	// CheckPassword tells whether password is the account's. A missing
	// account, or one without a password, never matches, and takes as long
	// to answer as one that does not match.
	CheckPassword(ctx context.Context, email, password string) (bool, error)
	// Account says what an account has set up; ok is false when there is
	// no account.
	Account(ctx context.Context, email string) (a Account, ok bool, err error)

	// StartTOTP gives an account a new TOTP secret, not yet confirmed
	// (sign-in does not ask for it), and returns it as an otpauth key for
	// an authenticator app.
	StartTOTP(ctx context.Context, email, issuer string) (*otp.Key, error)
	// ConfirmTOTP checks a code of the new secret; when it is right, the
	// secret becomes the account's second factor and the account gets
	// RecoveryCodes fresh recovery codes, returned once. A wrong code
	// returns ErrWrongCode.
	ConfirmTOTP(ctx context.Context, email, code string) ([]string, error)
	// CheckSecondFactor checks a code of the confirmed secret, or a
	// recovery code (spent by its use). A TOTP code is taken once: the same
	// code, or an older one, again is refused. A wrong code returns
	// ErrWrongCode.
	CheckSecondFactor(ctx context.Context, email, code string) error

	// SetTimeZone sets the account's time zone (an IANA name, checked by
	// the caller; empty for none), creating the account if needed: a
	// member who signs in with single sign-on may have no other setting.
	SetTimeZone(ctx context.Context, email, name string) error

	// AddPasskey adds a passkey to an account as its second factor,
	// creating the account if needed, with RecoveryCodes fresh recovery
	// codes, returned once. An account with a second factor already (TOTP
	// or a passkey) gets ErrHasSecondFactor: a session alone must not bind
	// another authenticator.
	AddPasskey(ctx context.Context, email string, p Passkey) (recoveryCodes []string, err error)
	// Passkeys lists an account's passkeys, oldest first.
	Passkeys(ctx context.Context, email string) ([]Passkey, error)
	// PasskeyUsed records a sign-in with a passkey: its updated record
	// (the authenticator's signature counter) and the time.
	PasskeyUsed(ctx context.Context, email, id string, credential []byte) error

	// CreateSession starts a session and returns its token, for the
	// session cookie; the store keeps only the token's digest.
	CreateSession(ctx context.Context, s Session) (token string, err error)
	// Session returns the session of a token and marks it seen now. A
	// session unseen for longer than idle (PendingIdle at most while a
	// stage of sign-in is left), or older than MaxSessionAge, has ended: it
	// is deleted, and ErrNoSession returned.
	Session(ctx context.Context, token string, idle time.Duration) (Session, error)
	// Peek is Session without marking it seen: for requests a page makes
	// on its own (a report refreshing itself), which must not keep an idle
	// session alive.
	Peek(ctx context.Context, token string, idle time.Duration) (Session, error)
	// EndSession ends the session of a token (signing out).
	EndSession(ctx context.Context, token string) error
	// EndSessionsOf ends every session of an account, and says how many
	// there were.
	EndSessionsOf(ctx context.Context, email string) (int, error)

	// Throttled says whether sign-in for key (an account, or an address)
	// has failed limit times within the window, and for how long more.
	Throttled(ctx context.Context, key string, limit int, window time.Duration) (retryAfter time.Duration, err error)
	// RecordFailure counts a failed sign-in for key, in a window that
	// starts with the first failure.
	RecordFailure(ctx context.Context, key string, window time.Duration) error
	// Attempt counts an attempt for key before it is checked, in one
	// statement, and says how long to wait when the count is past limit:
	// requests sent at once cannot all slip under the limit, as a check
	// followed by a count would let them. ClearFailures forgets the
	// attempts once a sign-in succeeds.
	Attempt(ctx context.Context, key string, limit int, window time.Duration) (retryAfter time.Duration, err error)
	// ClearFailures forgets key's failures (a sign-in succeeded).
	ClearFailures(ctx context.Context, key string) error

	// Prune deletes what can be of no more use at now: sessions older than
	// MaxSessionAge (ended, however busy), and counts of failures whose
	// window started a day or more ago (longer than any window). A session
	// or a count is otherwise deleted only when it is next presented, and
	// most never are.
	Prune(ctx context.Context, now time.Time) error
}

// Account is what an account has set up.
type Account struct {
	Email string
	// HasPassword is set once a password is.
	HasPassword bool
	// TOTPConfirmed is when the account's TOTP second factor was
	// confirmed; zero when it has none.
	TOTPConfirmed time.Time
	// RecoveryCodesLeft counts the recovery codes not yet used.
	RecoveryCodesLeft int
	// Passkeys counts the account's passkeys.
	Passkeys int
}

// Session is a signed-in member's session.
type Session struct {
	// Email is the member's, as hubv1.EmailKey keeps it.
	Email string
	// Methods are how the member proved who they are, as RFC 8176 names
	// them ("pwd", "otp", "hwk", "fed" for single sign-on, "mfa" when two
	// were used).
	Methods []string
	// Role is the member's role when the session began: the dashboard
	// ends a session whose member's role has changed since.
	Role string
	// Stage is how far sign-in has come: "" once it is done, else a step
	// still to take (StageSecondFactor, StageEnrol). A session of a stage
	// grants nothing else.
	Stage string
	// Created and LastSeen are when the session began and when it was
	// last used.
	Created, LastSeen time.Time
	// TimeZone is the account's time zone, an IANA name ("Europe/Berlin"),
	// as SetTimeZone set it; empty when the member chose none. Read with
	// the session; CreateSession ignores it.
	TimeZone string
}

// Stages of a sign-in that is not done.
const (
	// StageSecondFactor: the password was right; a code is asked for.
	StageSecondFactor = "second-factor"
	// StageEnrol: the password was right, and the member must set up a
	// second factor before anything else.
	StageEnrol = "enrol"
)

// Errors.
var (
	// ErrNoSession: the token names no session, or one that has ended.
	ErrNoSession = errors.New("no such session: sign in again")
	// ErrWrongCode: a second-factor code is wrong, already used, or
	// there is no second factor to check it against.
	ErrWrongCode = errors.New("the code is not right: check the time on your device, and use a code once")
	// ErrHasSecondFactor: the account has a second factor already, and
	// AddPasskey adds none beside it.
	ErrHasSecondFactor = errors.New("the account has a second factor already")
)

// RecoveryCodes is how many recovery codes an account gets.
const RecoveryCodes = 10

// MaxSessionAge bounds a session whatever its activity: sign in again
// once a day.
const MaxSessionAge = 24 * time.Hour

// PendingIdle is how long a sign-in may wait at a stage (between its
// password and its second factor, say).
const PendingIdle = 5 * time.Minute

// touchEvery is how stale a session's last-seen time may get before a use
// writes it: one write a minute per session, not one a request.
const touchEvery = time.Minute

var schema = []string{
	`CREATE TABLE IF NOT EXISTS dashboard_accounts (
		email TEXT PRIMARY KEY,
		password_hash TEXT NOT NULL DEFAULT '',
		totp_secret TEXT NOT NULL DEFAULT '',
		totp_pending TEXT NOT NULL DEFAULT '',
		totp_confirmed BIGINT NOT NULL DEFAULT 0,
		totp_last_step BIGINT NOT NULL DEFAULT 0,
		time_zone TEXT NOT NULL DEFAULT '',
		updated BIGINT NOT NULL)` + "%TABLE_OPTIONS%",
	`CREATE TABLE IF NOT EXISTS dashboard_recovery_codes (
		email TEXT NOT NULL,
		code_hash TEXT NOT NULL,
		used BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (email, code_hash))` + "%TABLE_OPTIONS%",
	`CREATE TABLE IF NOT EXISTS dashboard_passkeys (
		email TEXT NOT NULL,
		id TEXT NOT NULL,
		name TEXT NOT NULL,
		credential TEXT NOT NULL,
		created BIGINT NOT NULL,
		last_used BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (email, id))` + "%TABLE_OPTIONS%",
	`CREATE TABLE IF NOT EXISTS dashboard_sessions (
		id TEXT PRIMARY KEY,
		email TEXT NOT NULL,
		methods TEXT NOT NULL,
		role TEXT NOT NULL,
		stage TEXT NOT NULL,
		created BIGINT NOT NULL,
		last_seen BIGINT NOT NULL)` + "%TABLE_OPTIONS%",
	`CREATE INDEX IF NOT EXISTS dashboard_sessions_email ON dashboard_sessions (email)`,
	`CREATE TABLE IF NOT EXISTS dashboard_signin_failures (
		throttle_key TEXT PRIMARY KEY,
		window_start BIGINT NOT NULL,
		failures BIGINT NOT NULL)` + "%TABLE_OPTIONS%",
}

// addedColumns are those added since the tables' first release.
var addedColumns = []sqldb.Column{{Table: "dashboard_accounts", Name: "time_zone", Definition: "TEXT NOT NULL DEFAULT ''"}}

type sqlStore struct {
	db     *sqldb.DB
	p      func(int) string
	seal   *Sealer
	clock  clock.PassiveClock
	params HashParams
	// dummy is a hash of nothing, checked against when there is no
	// account, so that its absence takes as long as a wrong password.
	dummy string
	// hashing bounds the password hashes computed at once: each takes
	// HashParams.Memory, and sign-ins need no authentication.
	hashing chan struct{}
}

// hash runs f, a password hash, when a slot is free, or fails when ctx
// ends first.
func (s *sqlStore) hash(ctx context.Context, f func()) error {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashing }()
	f()
	return nil
}

// Options configure a Store.
type Options struct {
	// SealingKey (SealingKeyLength bytes) seals TOTP secrets. Keep it
	// apart from the database: a Secret of its own.
	SealingKey []byte
	// Clock tells the time; nil means the real clock.
	Clock clock.PassiveClock
	// HashParams are the cost of new password hashes; zero means
	// DefaultHashParams.
	HashParams HashParams
}

// New returns the store in db, creating its tables if needed.
func New(ctx context.Context, db *sqldb.DB, o Options) (Store, error) {
	seal, err := NewSealer(o.SealingKey)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, "dashboard accounts", schema, addedColumns); err != nil {
		return nil, err
	}
	s := &sqlStore{db: db, p: db.D.Placeholder, seal: seal, clock: o.Clock, params: o.HashParams,
		hashing: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.params == (HashParams{}) {
		s.params = DefaultHashParams
	}
	if s.dummy, err = hashPassword("no account has this password", s.params); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sqlStore) now() time.Time { return s.clock.Now() }

// SetPassword implements Store.
func (s *sqlStore) SetPassword(ctx context.Context, email, password string) error {
	if err := CheckPasswordPolicy(password); err != nil {
		return err
	}
	var hash string
	var err error
	if herr := s.hash(ctx, func() { hash, err = hashPassword(password, s.params) }); herr != nil {
		return herr
	}
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_accounts (email, password_hash, updated) VALUES (%s, %s, %s)
		ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash, updated = excluded.updated`, s.p(1), s.p(2), s.p(3)),
		hubv1.EmailKey(email), hash, s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("setting the password of %s: %w", email, err)
	}
	return nil
}

// CheckPassword implements Store.
func (s *sqlStore) CheckPassword(ctx context.Context, email, password string) (bool, error) {
	var hash string
	err := s.db.QueryRowContext(ctx, "SELECT password_hash FROM dashboard_accounts WHERE email = "+s.p(1),
		hubv1.EmailKey(email)).Scan(&hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("reading the account of %s: %w", email, err)
	}
	if hash == "" {
		hash = s.dummy // no account: as long as a wrong password
	}
	var ok bool
	if herr := s.hash(ctx, func() { ok, err = verifyPassword(password, hash) }); herr != nil {
		return false, herr
	}
	return ok && hash != s.dummy, err
}

// Account implements Store.
func (s *sqlStore) Account(ctx context.Context, email string) (Account, bool, error) {
	a := Account{Email: hubv1.EmailKey(email)}
	var hash string
	var confirmed int64
	err := s.db.QueryRowContext(ctx, "SELECT password_hash, totp_confirmed FROM dashboard_accounts WHERE email = "+s.p(1),
		a.Email).Scan(&hash, &confirmed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return a, false, nil
	case err != nil:
		return a, false, fmt.Errorf("reading the account of %s: %w", email, err)
	}
	a.HasPassword = hash != ""
	if confirmed != 0 {
		a.TOTPConfirmed = time.UnixMicro(confirmed).UTC()
	}
	err = s.db.QueryRowContext(ctx, fmt.Sprintf(`SELECT (SELECT COUNT(*) FROM dashboard_recovery_codes WHERE used = 0 AND email = %s),
		(SELECT COUNT(*) FROM dashboard_passkeys WHERE email = %s)`, s.p(1), s.p(2)), a.Email, a.Email).Scan(&a.RecoveryCodesLeft, &a.Passkeys)
	if err != nil {
		return a, false, fmt.Errorf("reading the recovery codes of %s: %w", email, err)
	}
	return a, true, nil
}

// totpOptions are the TOTP parameters authenticator apps all support
// (RFC 6238 defaults: SHA-1, 6 digits, 30-second steps), with one step of
// clock skew either way.
func totpOptions() totp.ValidateOpts {
	return totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
}

// StartTOTP implements Store.
func (s *sqlStore) StartTOTP(ctx context.Context, email, issuer string) (*otp.Key, error) {
	account := hubv1.EmailKey(email)
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: 30, Digits: otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, err
	}
	sealed, err := s.seal.Seal(account, key.Secret())
	if err != nil {
		return nil, err
	}
	_, err = s.db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_accounts (email, totp_pending, updated) VALUES (%s, %s, %s)
		ON CONFLICT (email) DO UPDATE SET totp_pending = excluded.totp_pending, updated = excluded.updated`, s.p(1), s.p(2), s.p(3)),
		account, sealed, s.now().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("starting the second factor of %s: %w", email, err)
	}
	return key, nil
}

// ConfirmTOTP implements Store.
func (s *sqlStore) ConfirmTOTP(ctx context.Context, email, code string) ([]string, error) {
	account := hubv1.EmailKey(email)
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var pending string
	err = tx.QueryRowContext(ctx, "SELECT totp_pending FROM dashboard_accounts WHERE email = "+s.p(1), account).Scan(&pending)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && pending == "") {
		return nil, ErrWrongCode
	}
	if err != nil {
		return nil, fmt.Errorf("reading the second factor of %s: %w", email, err)
	}
	secret, err := s.seal.Open(account, pending)
	if err != nil {
		return nil, err
	}
	step, ok := s.matchingStep(secret, code, 0)
	if !ok {
		return nil, ErrWrongCode
	}
	// Only the secret read: a confirmation of the same secret at the same
	// moment (a form sent twice) finds it gone, and changes nothing.
	res, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE dashboard_accounts SET totp_secret = totp_pending, totp_pending = '',
		totp_confirmed = %s, totp_last_step = %s, updated = %s WHERE email = %s AND totp_pending = %s`, s.p(1), s.p(2), s.p(3), s.p(4), s.p(5)),
		s.now().UnixMicro(), step, s.now().UnixMicro(), account, pending)
	if err != nil {
		return nil, fmt.Errorf("confirming the second factor of %s: %w", email, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return nil, ErrWrongCode
	}
	codes, err := s.replaceRecoveryCodes(ctx, tx, account)
	if err != nil {
		return nil, err
	}
	return codes, tx.Commit()
}

// matchingStep finds the time step (of the current one and one either
// side) whose code is code, later than after.
func (s *sqlStore) matchingStep(secret, code string, after int64) (int64, bool) {
	opts := totpOptions()
	now := s.now()
	current := now.Unix() / int64(opts.Period)
	for d := -int64(opts.Skew); d <= int64(opts.Skew); d++ {
		step := current + d
		if step <= after {
			continue
		}
		at := time.Unix(step*int64(opts.Period), 0)
		want, err := totp.GenerateCodeCustom(secret, at, opts)
		if err == nil && subtle.ConstantTimeCompare([]byte(code), []byte(want)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// CheckSecondFactor implements Store.
func (s *sqlStore) CheckSecondFactor(ctx context.Context, email, code string) error {
	account := hubv1.EmailKey(email)
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var sealed string
	var last int64
	err = tx.QueryRowContext(ctx, "SELECT totp_secret, totp_last_step FROM dashboard_accounts WHERE email = "+s.p(1),
		account).Scan(&sealed, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrWrongCode
	}
	if err != nil {
		return fmt.Errorf("reading the second factor of %s: %w", email, err)
	}
	if len(code) == int(otp.DigitsSix) {
		if sealed == "" {
			return ErrWrongCode // no authenticator app (a passkey's account has recovery codes only)
		}
		secret, err := s.seal.Open(account, sealed)
		if err != nil {
			return err
		}
		step, ok := s.matchingStep(secret, code, last)
		if !ok {
			return ErrWrongCode
		}
		// Taken once: a concurrent use of the same code finds the step
		// moved on, and updates nothing.
		res, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE dashboard_accounts SET totp_last_step = %s
			WHERE email = %s AND totp_last_step < %s`, s.p(1), s.p(2), s.p(3)), step, account, step)
		if err != nil {
			return fmt.Errorf("recording the second factor of %s: %w", email, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return ErrWrongCode
		}
		return tx.Commit()
	}
	res, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE dashboard_recovery_codes SET used = %s
		WHERE email = %s AND code_hash = %s AND used = 0`, s.p(1), s.p(2), s.p(3)), s.now().UnixMicro(), account, digest(normalCode(code)))
	if err != nil {
		return fmt.Errorf("using a recovery code of %s: %w", email, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return ErrWrongCode
	}
	return tx.Commit()
}

// replaceRecoveryCodes gives an account fresh recovery codes: ten groups
// of 50 random bits, written as two groups of five base32 letters.
func (s *sqlStore) replaceRecoveryCodes(ctx context.Context, tx *sql.Tx, account string) ([]string, error) {
	if _, err := tx.ExecContext(ctx, "DELETE FROM dashboard_recovery_codes WHERE email = "+s.p(1), account); err != nil {
		return nil, fmt.Errorf("replacing the recovery codes of %s: %w", account, err)
	}
	codes := make([]string, 0, RecoveryCodes)
	for range RecoveryCodes {
		raw := make([]byte, 10)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		c := strings.ToLower(base32.StdEncoding.EncodeToString(raw))[:10]
		code := c[:5] + "-" + c[5:]
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_recovery_codes (email, code_hash) VALUES (%s, %s)`,
			s.p(1), s.p(2)), account, digest(normalCode(code))); err != nil {
			return nil, fmt.Errorf("storing the recovery codes of %s: %w", account, err)
		}
		codes = append(codes, code)
	}
	return codes, nil
}

// normalCode is a recovery code as stored: lower case, without the dash.
func normalCode(code string) string { return strings.ToLower(strings.ReplaceAll(code, "-", "")) }

// SetTimeZone implements Store.
func (s *sqlStore) SetTimeZone(ctx context.Context, email, name string) error {
	_, err := s.db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_accounts (email, time_zone, updated) VALUES (%s, %s, %s)
		ON CONFLICT (email) DO UPDATE SET time_zone = excluded.time_zone, updated = excluded.updated`, s.p(1), s.p(2), s.p(3)),
		hubv1.EmailKey(email), name, s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("setting the time zone of %s: %w", email, err)
	}
	return nil
}

// CreateSession implements Store.
func (s *sqlStore) CreateSession(ctx context.Context, sess Session) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now().UnixMicro()
	_, err := s.db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_sessions (id, email, methods, role, stage, created, last_seen)
		VALUES (%s, %s, %s, %s, %s, %s, %s)`, s.p(1), s.p(2), s.p(3), s.p(4), s.p(5), s.p(6), s.p(7)),
		digest(token), hubv1.EmailKey(sess.Email), strings.Join(sess.Methods, " "), sess.Role, sess.Stage, now, now)
	if err != nil {
		return "", fmt.Errorf("starting a session: %w", err)
	}
	return token, nil
}

// Session implements Store.
func (s *sqlStore) Session(ctx context.Context, token string, idle time.Duration) (Session, error) {
	return s.session(ctx, token, idle, true)
}

// Peek implements Store.
func (s *sqlStore) Peek(ctx context.Context, token string, idle time.Duration) (Session, error) {
	return s.session(ctx, token, idle, false)
}

func (s *sqlStore) session(ctx context.Context, token string, idle time.Duration, touch bool) (Session, error) {
	id := digest(token)
	var sess Session
	var methods string
	var created, seen int64
	// The account's preferences come along: every page shows times in
	// the member's zone.
	err := s.db.QueryRowContext(ctx, `SELECT s.email, s.methods, s.role, s.stage, s.created, s.last_seen, COALESCE(a.time_zone, '')
		FROM dashboard_sessions s LEFT JOIN dashboard_accounts a ON a.email = s.email WHERE s.id = `+s.p(1), id).Scan(
		&sess.Email, &methods, &sess.Role, &sess.Stage, &created, &seen, &sess.TimeZone)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Session{}, ErrNoSession
	case err != nil:
		return Session{}, fmt.Errorf("reading a session: %w", err)
	}
	now := s.now()
	sess.Methods, sess.Created, sess.LastSeen = strings.Fields(methods), time.UnixMicro(created), time.UnixMicro(seen)
	if sess.Stage != "" {
		idle = min(idle, PendingIdle)
	}
	if now.Sub(sess.LastSeen) > idle || now.Sub(sess.Created) > MaxSessionAge {
		if _, err := s.db.ExecContext(ctx, "DELETE FROM dashboard_sessions WHERE id = "+s.p(1), id); err != nil {
			return Session{}, fmt.Errorf("ending a session: %w", err)
		}
		return Session{}, ErrNoSession
	}
	if touch && now.Sub(sess.LastSeen) >= touchEvery {
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("UPDATE dashboard_sessions SET last_seen = %s WHERE id = %s", s.p(1), s.p(2)),
			now.UnixMicro(), id); err != nil {
			return Session{}, fmt.Errorf("marking a session seen: %w", err)
		}
		sess.LastSeen = now
	}
	return sess, nil
}

// EndSession implements Store.
func (s *sqlStore) EndSession(ctx context.Context, token string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM dashboard_sessions WHERE id = "+s.p(1), digest(token)); err != nil {
		return fmt.Errorf("ending a session: %w", err)
	}
	return nil
}

// EndSessionsOf implements Store.
func (s *sqlStore) EndSessionsOf(ctx context.Context, email string) (int, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM dashboard_sessions WHERE email = "+s.p(1), hubv1.EmailKey(email))
	if err != nil {
		return 0, fmt.Errorf("ending the sessions of %s: %w", email, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// Throttled implements Store.
func (s *sqlStore) Throttled(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	var start, failures int64
	err := s.db.QueryRowContext(ctx, "SELECT window_start, failures FROM dashboard_signin_failures WHERE throttle_key = "+s.p(1),
		key).Scan(&start, &failures)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("reading sign-in failures: %w", err)
	}
	ends := time.UnixMicro(start).Add(window)
	if failures < int64(limit) || !s.now().Before(ends) {
		return 0, nil
	}
	return ends.Sub(s.now()), nil
}

// RecordFailure implements Store.
func (s *sqlStore) RecordFailure(ctx context.Context, key string, window time.Duration) error {
	_, _, err := s.count(ctx, key, window)
	return err
}

// Attempt implements Store.
func (s *sqlStore) Attempt(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	n, start, err := s.count(ctx, key, window)
	if err != nil || n <= int64(limit) {
		return 0, err
	}
	return max(time.UnixMicro(start).Add(window).Sub(s.now()), time.Second), nil
}

// count adds one to key's count in its window (a new window when the last
// one is over), and returns the count and when the window started.
func (s *sqlStore) count(ctx context.Context, key string, window time.Duration) (n, start int64, err error) {
	now := s.now()
	expired := now.Add(-window).UnixMicro()
	err = s.db.QueryRowContext(ctx, fmt.Sprintf(`INSERT INTO dashboard_signin_failures (throttle_key, window_start, failures)
		VALUES (%s, %s, 1) ON CONFLICT (throttle_key) DO UPDATE SET
		failures = CASE WHEN dashboard_signin_failures.window_start <= %s THEN 1 ELSE dashboard_signin_failures.failures + 1 END,
		window_start = CASE WHEN dashboard_signin_failures.window_start <= %s THEN excluded.window_start
			ELSE dashboard_signin_failures.window_start END
		RETURNING failures, window_start`, s.p(1), s.p(2), s.p(3), s.p(4)), key, now.UnixMicro(), expired, expired).Scan(&n, &start)
	if err != nil {
		return 0, 0, fmt.Errorf("counting a sign-in attempt: %w", err)
	}
	return n, start, nil
}

// ClearFailures implements Store.
func (s *sqlStore) ClearFailures(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM dashboard_signin_failures WHERE throttle_key = "+s.p(1), key); err != nil {
		return fmt.Errorf("clearing sign-in failures: %w", err)
	}
	return nil
}

// Prune implements Store.
func (s *sqlStore) Prune(ctx context.Context, now time.Time) error {
	_, err1 := s.db.ExecContext(ctx, "DELETE FROM dashboard_sessions WHERE created < "+s.p(1), now.Add(-MaxSessionAge).UnixMicro())
	_, err2 := s.db.ExecContext(ctx, "DELETE FROM dashboard_signin_failures WHERE window_start < "+s.p(1), now.Add(-24*time.Hour).UnixMicro())
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("pruning dashboard sessions: %w", err)
	}
	return nil
}

// digest is the hex SHA-256 of a token or code: what the store keeps of
// secrets it never needs back.
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
