package usage

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsPoison tells whether a store error is about the data being written (a
// value the database refuses, a constraint, a trigger that raises), which
// writing the same data again cannot fix, rather than about the store's
// state (busy, locked, a timeout, a lost connection, a full disk), which
// waiting can. Only the first kind may set an event aside: the second
// would set aside good events during an outage.
func IsPoison(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "22", // data exception: a value out of range, bad encoding
			"23", // integrity constraint violation
			"P0": // PL/pgSQL raise: a trigger refused the row
			return true
		}
		return false
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_RANGE:
			return true
		}
	}
	return false
}
