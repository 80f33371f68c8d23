package accounts_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/pquerna/otp/totp"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/minimax/platform-hub/internal/accounts"
	"github.com/minimax/platform-hub/internal/sqldb"
	"github.com/minimax/platform-hub/internal/testpg"
)

var pg *testpg.Server

func TestMain(m *testing.M) { os.Exit(testpg.Run(m, &pg)) }

// cheap are hash parameters for tests: the default's memory and passes
// under the race detector would take seconds a hash.
var cheap = accounts.HashParams{Time: 1, Memory: 8 * 1024, Threads: 1}

var sealingKey = []byte("0123456789abcdef0123456789abcdef")

// fixture is a store on a fake clock, and its database.
type fixture struct {
	accounts.Store
	db    *sqldb.DB
	clock *clocktesting.FakeClock
}

func open(ctx context.Context, db *sqldb.DB) (fixture, error) {
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
	s, err := accounts.New(ctx, db, accounts.Options{SealingKey: sealingKey, Clock: clock, HashParams: cheap})
	return fixture{Store: s, db: db, clock: clock}, err
}

// column reads every value of a column, for checks of what the database
// holds.
func (f fixture) column(g Gomega, query string) []string {
	rows, err := f.db.QueryContext(context.Background(), query)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var v string
		g.Expect(rows.Scan(&v)).To(Succeed())
		out = append(out, v)
	}
	return out
}

var suite = []testpg.Case[fixture]{
	{Name: "passkeys: one as the first second factor, with recovery codes; a sign-in records its use", Run: func(t *testing.T, f fixture) {
		g := NewWithT(t)
		ctx := context.Background()
		codes, err := f.AddPasskey(ctx, "Key@example.com", accounts.Passkey{ID: "cred-1", Name: "Laptop", Credential: []byte(`{"n":1}`)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(codes).To(HaveLen(accounts.RecoveryCodes))
		a, ok, err := f.Account(ctx, "key@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue())
		g.Expect(a.Passkeys).To(Equal(1))
		g.Expect(a.HasSecondFactor()).To(BeTrue())
		g.Expect(a.HasPassword).To(BeFalse())
		g.Expect(a.RecoveryCodesLeft).To(Equal(accounts.RecoveryCodes))
		g.Expect(f.CheckSecondFactor(ctx, "key@example.com", codes[0])).To(Succeed(), "its recovery codes work")
		f.clock.Step(time.Second)
		_, err = f.AddPasskey(ctx, "key@example.com", accounts.Passkey{ID: "cred-2", Name: "Phone", Credential: []byte(`{"n":2}`)})
		g.Expect(err).To(MatchError(accounts.ErrHasSecondFactor), "a session alone binds no second authenticator")
		g.Expect(f.SetPassword(ctx, "totp@example.com", "a long enough passphrase")).To(Succeed())
		key, err := f.StartTOTP(ctx, "totp@example.com", "Hub")
		g.Expect(err).NotTo(HaveOccurred())
		code, err := totp.GenerateCode(key.Secret(), f.clock.Now())
		g.Expect(err).NotTo(HaveOccurred())
		_, err = f.ConfirmTOTP(ctx, "totp@example.com", code)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = f.AddPasskey(ctx, "totp@example.com", accounts.Passkey{ID: "cred-3", Name: "Laptop", Credential: []byte(`{}`)})
		g.Expect(err).To(MatchError(accounts.ErrHasSecondFactor), "nor beside an authenticator app")
		f.clock.Step(time.Minute)
		g.Expect(f.PasskeyUsed(ctx, "key@example.com", "cred-1", []byte(`{"n":1,"count":5}`))).To(Succeed())
		keys, err := f.Passkeys(ctx, "KEY@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(keys).To(HaveLen(1))
		g.Expect(keys[0].ID).To(Equal("cred-1"))
		g.Expect(keys[0].Name).To(Equal("Laptop"))
		g.Expect(string(keys[0].Credential)).To(Equal(`{"n":1,"count":5}`))
		g.Expect(keys[0].LastUsed).To(Equal(f.clock.Now()))
		other, err := f.Passkeys(ctx, "totp@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(other).To(BeEmpty())
	}},
	{Name: "a session carries its account's time zone; an older table gains the column", Run: func(t *testing.T, f fixture) {
		g := NewWithT(t)
		ctx := context.Background()
		token, err := f.CreateSession(ctx, accounts.Session{Email: "sso@example.com", Methods: []string{"fed"}, Role: "Viewer"})
		g.Expect(err).NotTo(HaveOccurred())
		sess, err := f.Session(ctx, token, time.Hour)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sess.TimeZone).To(BeEmpty(), "no account yet")
		g.Expect(f.SetTimeZone(ctx, "SSO@example.com", "Asia/Kolkata")).To(Succeed())
		sess, err = f.Session(ctx, token, time.Hour)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sess.TimeZone).To(Equal("Asia/Kolkata"))
		ok, err := f.CheckPassword(ctx, "sso@example.com", "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeFalse(), "an account made for a setting has no password")

		// The table as first released, with an account in it.
		_, err = f.db.ExecContext(ctx, "DROP TABLE dashboard_accounts")
		g.Expect(err).NotTo(HaveOccurred())
		_, err = f.db.ExecContext(ctx, `CREATE TABLE dashboard_accounts (email TEXT PRIMARY KEY, password_hash TEXT NOT NULL DEFAULT '',
			totp_secret TEXT NOT NULL DEFAULT '', totp_pending TEXT NOT NULL DEFAULT '', totp_confirmed BIGINT NOT NULL DEFAULT 0,
			totp_last_step BIGINT NOT NULL DEFAULT 0, updated BIGINT NOT NULL)`)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = f.db.ExecContext(ctx, "INSERT INTO dashboard_accounts (email, updated) VALUES ('sso@example.com', 1)")
		g.Expect(err).NotTo(HaveOccurred())
		upgraded, err := open(ctx, f.db)
		g.Expect(err).NotTo(HaveOccurred())
		sess, err = upgraded.Session(ctx, token, time.Hour)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sess.TimeZone).To(BeEmpty())
		g.Expect(upgraded.SetTimeZone(ctx, "sso@example.com", "Europe/Berlin")).To(Succeed())
		g.Expect(f.column(g, "SELECT time_zone FROM dashboard_accounts")).To(Equal([]string{"Europe/Berlin"}))
	}},
	{Name: "passwords are checked, never stored, and must be long enough", Run: func(t *testing.T, f fixture) {
		g := NewWithT(t)
		ctx := context.Background()
		err := f.SetPassword(ctx, "dev@example.com", "short")
		g.Expect(errors.Is(err, accounts.ErrPasswordPolicy)).To(BeTrue())
		g.Expect(err).To(MatchError(ContainSubstring("at least 12 characters")))
		g.Expect(f.SetPassword(ctx, "Dev@Example.com", "correct horse battery")).To(Succeed())
		for _, c := range []struct {
			email, password string
			ok              bool
		}{
			{"dev@example.com", "correct horse battery", true},
			{" DEV@example.com", "correct horse battery", true},
			{"dev@example.com", "correct horse batterY", false},
			{"nobody@example.com", "correct horse battery", false},
		} {
			ok, err := f.CheckPassword(ctx, c.email, c.password)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ok).To(Equal(c.ok), "%+v", c)
		}
		hashes := f.column(g, "SELECT password_hash FROM dashboard_accounts")
		g.Expect(hashes).To(HaveLen(1))
		g.Expect(hashes[0]).To(HavePrefix("$argon2id$v=19$m=8192,t=1,p=1$"))
		g.Expect(hashes[0]).NotTo(ContainSubstring("horse"))
		a, ok, err := f.Account(ctx, "dev@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue())
		g.Expect(a).To(Equal(accounts.Account{Email: "dev@example.com", HasPassword: true}))
		_, ok, err = f.Account(ctx, "nobody@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeFalse())
	}},
	{Name: "a TOTP second factor is confirmed once, and each code is taken once", Run: func(t *testing.T, f fixture) {
		g := NewWithT(t)
		ctx := context.Background()
		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", "123456")).To(MatchError(accounts.ErrWrongCode), "none set up")
		key, err := f.StartTOTP(ctx, "dev@example.com", "Platform Hub")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(key.Issuer()).To(Equal("Platform Hub"))
		g.Expect(key.AccountName()).To(Equal("dev@example.com"))
		code := func() string {
			c, err := totp.GenerateCode(key.Secret(), f.clock.Now())
			g.Expect(err).NotTo(HaveOccurred())
			return c
		}
		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", code())).To(MatchError(accounts.ErrWrongCode), "not confirmed yet")
		_, err = f.ConfirmTOTP(ctx, "dev@example.com", "000000")
		g.Expect(err).To(MatchError(accounts.ErrWrongCode))
		recovery, err := f.ConfirmTOTP(ctx, "dev@example.com", code())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(recovery).To(HaveLen(accounts.RecoveryCodes))
		g.Expect(recovery[0]).To(MatchRegexp(`^[a-z2-7]{5}-[a-z2-7]{5}$`))

		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", code())).To(MatchError(accounts.ErrWrongCode),
			"the code that confirmed is spent")
		f.clock.Step(30 * time.Second)
		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", code())).To(Succeed())
		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", code())).To(MatchError(accounts.ErrWrongCode), "a replay")
		late := code()
		f.clock.Step(90 * time.Second)
		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", late)).To(MatchError(accounts.ErrWrongCode), "three steps old")

		// A recovery code works once, with or without its dash.
		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", strings.ToUpper(strings.ReplaceAll(recovery[3], "-", "")))).To(Succeed())
		g.Expect(f.CheckSecondFactor(ctx, "dev@example.com", recovery[3])).To(MatchError(accounts.ErrWrongCode))
		a, _, err := f.Account(ctx, "dev@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(a.RecoveryCodesLeft).To(Equal(accounts.RecoveryCodes - 1))
		g.Expect(a.TOTPConfirmed).NotTo(BeZero())

		// The database holds neither the secret nor the codes.
		for _, v := range f.column(g, "SELECT totp_secret FROM dashboard_accounts") {
			g.Expect(v).NotTo(ContainSubstring(key.Secret()))
		}
		for _, v := range f.column(g, "SELECT code_hash FROM dashboard_recovery_codes") {
			g.Expect(v).NotTo(ContainSubstring(strings.ReplaceAll(recovery[0], "-", "")))
		}
		// Opened with another sealing key, the secret does not open.
		other, err := accounts.New(ctx, f.db, accounts.Options{SealingKey: []byte("another key, 32 bytes long......"),
			Clock: f.clock, HashParams: cheap})
		g.Expect(err).NotTo(HaveOccurred())
		f.clock.Step(30 * time.Second)
		g.Expect(other.CheckSecondFactor(ctx, "dev@example.com", code())).To(MatchError(ContainSubstring("sealing key")))
	}},
	{Name: "sessions end when idle, when too old, and on demand", Run: func(t *testing.T, f fixture) {
		g := NewWithT(t)
		ctx := context.Background()
		idle := 15 * time.Minute
		token, err := f.CreateSession(ctx, accounts.Session{Email: "Dev@example.com", Methods: []string{"pwd", "otp", "mfa"}, Role: "Developer",
			Stage: accounts.StageEnrol})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(f.column(g, "SELECT id FROM dashboard_sessions")).NotTo(ContainElement(token), "only the token's digest is kept")
		s, err := f.Session(ctx, token, idle)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Email).To(Equal("dev@example.com"))
		g.Expect(s.Methods).To(Equal([]string{"pwd", "otp", "mfa"}))
		g.Expect(s.Role).To(Equal("Developer"))
		g.Expect(s.Stage).To(Equal(accounts.StageEnrol))
		f.clock.Step(accounts.PendingIdle + time.Second)
		_, err = f.Session(ctx, token, idle)
		g.Expect(err).To(MatchError(accounts.ErrNoSession), "a sign-in left at a stage ends sooner")
		token, err = f.CreateSession(ctx, accounts.Session{Email: "Dev@example.com", Methods: []string{"pwd", "otp", "mfa"}, Role: "Developer"})
		g.Expect(err).NotTo(HaveOccurred())
		// Each use within the idle time keeps it alive.
		for range 3 {
			f.clock.Step(14 * time.Minute)
			_, err = f.Session(ctx, token, idle)
			g.Expect(err).NotTo(HaveOccurred())
		}
		// A peek (a page refreshing itself) is not activity.
		f.clock.Step(10 * time.Minute)
		_, err = f.Peek(ctx, token, idle)
		g.Expect(err).NotTo(HaveOccurred())
		f.clock.Step(idle - 10*time.Minute + time.Second)
		_, err = f.Session(ctx, token, idle)
		g.Expect(err).To(MatchError(accounts.ErrNoSession))
		_, err = f.Session(ctx, "made-up", idle)
		g.Expect(err).To(MatchError(accounts.ErrNoSession))

		// However busy, a session ends after MaxSessionAge.
		busy, err := f.CreateSession(ctx, accounts.Session{Email: "dev@example.com", Methods: []string{"pwd"}, Role: "Developer"})
		g.Expect(err).NotTo(HaveOccurred())
		for elapsed := time.Duration(0); elapsed < accounts.MaxSessionAge-10*time.Minute; elapsed += 10 * time.Minute {
			f.clock.Step(10 * time.Minute)
			_, err = f.Session(ctx, busy, idle)
			g.Expect(err).NotTo(HaveOccurred())
		}
		f.clock.Step(20 * time.Minute)
		_, err = f.Session(ctx, busy, idle)
		g.Expect(err).To(MatchError(accounts.ErrNoSession))

		a, _ := f.CreateSession(ctx, accounts.Session{Email: "dev@example.com", Role: "Developer"})
		b, _ := f.CreateSession(ctx, accounts.Session{Email: "dev@example.com", Role: "Developer"})
		c, _ := f.CreateSession(ctx, accounts.Session{Email: "ops@example.com", Role: "Admin"})
		g.Expect(f.EndSession(ctx, a)).To(Succeed())
		_, err = f.Session(ctx, a, idle)
		g.Expect(err).To(MatchError(accounts.ErrNoSession))
		n, err := f.EndSessionsOf(ctx, "DEV@example.com")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n).To(Equal(1))
		_, err = f.Session(ctx, b, idle)
		g.Expect(err).To(MatchError(accounts.ErrNoSession))
		_, err = f.Session(ctx, c, idle)
		g.Expect(err).NotTo(HaveOccurred(), "another member's session stays")

		// Pruning deletes sessions no one will present again, and stale
		// failure counts; a session in use stays.
		g.Expect(f.RecordFailure(ctx, "address:192.0.2.9", time.Minute)).To(Succeed())
		f.clock.Step(accounts.MaxSessionAge - time.Minute)
		_, _ = f.CreateSession(ctx, accounts.Session{Email: "new@example.com", Role: "Viewer"})
		f.clock.Step(2 * time.Minute)
		g.Expect(f.Prune(ctx, f.clock.Now())).To(Succeed())
		g.Expect(f.column(g, "SELECT email FROM dashboard_sessions")).To(Equal([]string{"new@example.com"}))
		g.Expect(f.column(g, "SELECT throttle_key FROM dashboard_signin_failures")).To(BeEmpty())
	}},
	{Name: "failed sign-ins are throttled within a window", Run: func(t *testing.T, f fixture) {
		g := NewWithT(t)
		ctx := context.Background()
		window := 15 * time.Minute
		for range 3 {
			wait, err := f.Throttled(ctx, "account:dev@example.com", 3, window)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(wait).To(BeZero())
			g.Expect(f.RecordFailure(ctx, "account:dev@example.com", window)).To(Succeed())
			f.clock.Step(time.Minute)
		}
		wait, err := f.Throttled(ctx, "account:dev@example.com", 3, window)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wait).To(Equal(12 * time.Minute))
		wait, _ = f.Throttled(ctx, "address:192.0.2.1", 3, window)
		g.Expect(wait).To(BeZero(), "keys are apart")
		f.clock.Step(12 * time.Minute)
		wait, _ = f.Throttled(ctx, "account:dev@example.com", 3, window)
		g.Expect(wait).To(BeZero(), "the window is over")
		// A failure after the window starts a new one.
		g.Expect(f.RecordFailure(ctx, "account:dev@example.com", window)).To(Succeed())
		wait, _ = f.Throttled(ctx, "account:dev@example.com", 1, window)
		g.Expect(wait).To(Equal(window))
		g.Expect(f.ClearFailures(ctx, "account:dev@example.com")).To(Succeed())
		wait, _ = f.Throttled(ctx, "account:dev@example.com", 1, window)
		g.Expect(wait).To(BeZero())
		// Attempts are counted as they are made: the third of a limit of
		// two waits, whatever it turns out to be.
		for i := range 3 {
			wait, err := f.Attempt(ctx, "account:ops@example.com", 2, window)
			g.Expect(err).NotTo(HaveOccurred())
			if i < 2 {
				g.Expect(wait).To(BeZero())
			} else {
				g.Expect(wait).To(Equal(window))
			}
		}
	}},
}

func TestStore(t *testing.T) { testpg.RunSuite(t, pg, open, suite) }

// TestDefaultHashParameters: a hash made with the defaults (RFC 9106's
// second option) records them, and verifies.
func TestDefaultHashParameters(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	db := testpg.Databases(pg)["sqlite"](t)
	s, err := accounts.New(ctx, db, accounts.Options{SealingKey: sealingKey})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.SetPassword(ctx, "owner@example.com", "a long enough passphrase")).To(Succeed())
	ok, err := s.CheckPassword(ctx, "owner@example.com", "a long enough passphrase")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue())
	var hash string
	g.Expect(db.QueryRowContext(ctx, "SELECT password_hash FROM dashboard_accounts").Scan(&hash)).To(Succeed())
	g.Expect(hash).To(HavePrefix("$argon2id$v=19$m=65536,t=3,p=4$"))
	_, err = accounts.New(ctx, db, accounts.Options{SealingKey: []byte("too short")})
	g.Expect(err).To(MatchError(ContainSubstring("must be 32 bytes")))
}
