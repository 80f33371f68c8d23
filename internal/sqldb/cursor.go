package sqldb

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cursor is a place in a table's (time, ID) order: where a page of rows
// ended. Pages of usage events, audit entries and alerts read on from one,
// so a page token stays valid across restarts and replicas.
type Cursor struct {
	Time time.Time
	ID   string
}

// Token is the cursor as an opaque, URL-safe page token.
func (c Cursor) Token() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Time.UnixMicro(), 10) + "/" + c.ID))
}

// ParseCursor reads a page token that Token made.
func ParseCursor(token string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return Cursor{}, err
	}
	micros, id, ok := strings.Cut(string(raw), "/")
	if !ok || id == "" {
		return Cursor{}, errors.New("malformed cursor")
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return Cursor{}, err
	}
	return Cursor{Time: time.UnixMicro(n).UTC(), ID: id}, nil
}

// After keeps the rows after cursor in the order of the microsecond column
// tsCol, then idCol; the zero Cursor keeps every row. The condition leads
// with tsCol >= the cursor's time, which an index on tsCol can start its
// range at (usage events, the large table, set the one lower bound
// themselves: see the usage store's Events).
func (c *Conds) After(tsCol, idCol string, cursor Cursor) {
	ts := cursor.Time.UnixMicro()
	if cursor.Time.IsZero() {
		ts = -1 << 62
	}
	c.Args = append(c.Args, ts, ts, ts, cursor.ID)
	n := len(c.Args)
	c.Where = append(c.Where, fmt.Sprintf("%s >= %s AND (%s > %s OR (%s = %s AND %s > %s))", tsCol, c.D.Placeholder(n-3),
		tsCol, c.D.Placeholder(n-2), tsCol, c.D.Placeholder(n-1), idCol, c.D.Placeholder(n)))
}
