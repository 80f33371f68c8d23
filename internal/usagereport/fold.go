package usagereport

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// A report is folded from the store's sums as they stream in (Store.Sum):
// each part of a bucket of the store's query (grouped by service and model
// besides the report's dimensions) goes into the report's bucket of its
// start and group. Usage whose cost adds up (token prices:
// pricing.PriceList.Additive) is priced part by part; any other is first
// summed per store bucket and priced whole, since a price that divides (per
// minute of video, per gigabyte-month) rounds its quotient. Either way the
// costs are those of the store's buckets, to the last digit.

// row is a bucket of a report while it is built: its group values are
// joined into one string, each followed by a NUL (the store refuses
// control characters in them), and its cost is a running pricing.Sum, made
// a decimal string only for the buckets the report shows.
type row struct {
	start    time.Time // where the range starts, in its first bucket
	group    string
	others   bool
	totals   usage.Totals
	unpriced int64
	cost     pricing.Sum
}

// add adds o's figures to r.
func (r *row) add(o *row) {
	r.totals.Add(o.totals)
	r.unpriced = usage.SaturatingAdd(r.unpriced, o.unpriced)
	r.cost.AddSum(o.cost)
}

// build sums [from, to) into the buckets and groups r asks for: the set's
// rows, sorted in time order, then in the order of their group values.
// Release the set when done with its rows.
func build(ctx context.Context, store usage.Store, prices *pricing.PriceList, r Request, from, to time.Time, loc *time.Location) (*rowSet, error) {
	q, keep := storeQuery(r, from, to, loc)
	f := newFolder(prices, r, q, keep, from, to, loc)
	var err error
	if slices.Contains(r.GroupBy, ByMember) {
		// Keys fold into their owners, known once every key is.
		err = store.Sum(ctx, q, f.whole.add)
		if err == nil {
			f.owners, err = keyOwners(ctx, store, &f.whole, f.keyAt)
		}
	} else {
		err = store.Sum(ctx, q, f.part)
	}
	if err == nil {
		f.priceWhole()
		if f.tooMany() {
			err = &InvalidError{"groupBy", fmt.Sprintf("the report would sum more than %d groups; group by fewer dimensions, "+
				"filter, or ask for a coarser granularity or a shorter range", maxRows)}
		}
	}
	if err != nil {
		f.set.release()
		return nil, err
	}
	f.set.sort()
	return f.set, nil
}

// rowSet holds a report's rows while it is built: in chunks that never
// move (a month of a thousand projects is 30,000 rows), indexed by their
// store bucket's start and group, whose strings are interned. Reports
// reuse sets (rowSets): each would otherwise leave megabytes of garbage,
// and collecting it is what a busy server's slowest reports wait on.
type rowSet struct {
	chunks [][]row
	count  int
	index  map[rowKey]*row
	groups map[string]string
	// rows are the rows sorted, after sort.
	rows []*row
}

var rowSets = sync.Pool{New: func() any { return &rowSet{index: map[rowKey]*row{}, groups: map[string]string{}} }}

// newRowSet is an empty set, reused when one was released.
func newRowSet() *rowSet { return rowSets.Get().(*rowSet) }

// add adds r to the set, where it stays.
func (s *rowSet) add(k rowKey, r row) *row {
	at := s.count / rowChunk
	if at == len(s.chunks) {
		s.chunks = append(s.chunks, make([]row, 0, rowChunk))
	}
	chunk := &s.chunks[at]
	*chunk = append(*chunk, r)
	s.count++
	out := &(*chunk)[len(*chunk)-1]
	s.index[k] = out
	return out
}

// sort lists the rows in time order, then in the order of their group
// values.
func (s *rowSet) sort() {
	for _, chunk := range s.chunks {
		for i := range chunk {
			s.rows = append(s.rows, &chunk[i])
		}
	}
	slices.SortFunc(s.rows, func(a, b *row) int { return cmp.Or(a.start.Compare(b.start), strings.Compare(a.group, b.group)) })
}

// release empties the set for another report; nothing may use its rows
// after.
func (s *rowSet) release() {
	for i := range s.chunks {
		clear(s.chunks[i]) // no pointers into the report kept alive
		s.chunks[i] = s.chunks[i][:0]
	}
	clear(s.rows)
	s.rows, s.count = s.rows[:0], 0
	clear(s.index)
	clear(s.groups)
	rowSets.Put(s)
}

// folder folds the store's parts into a report's rows.
type folder struct {
	prices         *pricing.PriceList
	r              Request
	from, to       time.Time
	loc            *time.Location
	dims           int // the store's group values
	service, model int // positions among them
	keyAt          int
	groupAt        []int // of each of r.GroupBy (a member's: its key's)
	keepAt         map[int]map[string]bool
	owners         map[string]string // key IDs' owners, when r groups by member
	set            *rowSet
	partRows       int // made by parts priced as they come
	key            []byte
	whole          storeBuckets // parts priced whole
}

func newFolder(prices *pricing.PriceList, r Request, q usage.Query, keep map[usage.Dimension]map[string]bool, from, to time.Time,
	loc *time.Location) *folder {
	at := func(d usage.Dimension) int { return slices.Index(q.GroupBy, d) }
	f := &folder{prices: prices, r: r, from: from, to: to, loc: loc, dims: len(q.GroupBy), service: at(usage.ByService), model: at(usage.ByModel),
		keyAt: at(usage.ByKeyID), groupAt: make([]int, len(r.GroupBy)), keepAt: map[int]map[string]bool{}, set: newRowSet(),
		whole: storeBuckets{index: map[string]int{}}}
	for i, d := range r.GroupBy {
		f.groupAt[i] = at(d)
		if d == ByMember {
			f.groupAt[i] = f.keyAt
		}
	}
	for d, values := range keep {
		f.keepAt[at(d)] = values
	}
	return f
}

// part folds one part of a store bucket: values are the store's group
// values.
func (f *folder) part(start time.Time, values []string, t usage.Totals) {
	if f.tooMany() || !keptValues(values, f.keepAt) {
		return
	}
	service, model := pricing.Service(values[f.service]), values[f.model]
	if !f.prices.Additive(service, model) {
		f.whole.add(start, values, t)
		return
	}
	rows := f.set.count
	out := f.row(start, values)
	f.partRows += f.set.count - rows
	out.totals.Add(t)
	f.prices.Add(&out.cost, t.PricingUsage(service, model))
}

// priceWhole folds the store buckets summed whole, each priced whole.
func (f *folder) priceWhole() {
	for i := range f.whole.buckets {
		b := &f.whole.buckets[i]
		values := f.whole.values[b.values : b.values+f.dims]
		if !keptValues(values, f.keepAt) {
			continue
		}
		out := f.row(b.start, values)
		out.totals.Add(b.totals)
		if _, unpriced := f.prices.Add(&out.cost, b.totals.PricingUsage(pricing.Service(values[f.service]), values[f.model])); unpriced {
			out.unpriced = usage.SaturatingAdd(out.unpriced, b.totals.Calls)
		}
	}
}

// rowKey keys a row: the store's start of its bucket, in Unix
// nanoseconds, and its group.
type rowKey struct {
	start int64
	group string
}

// rowChunk is how many rows a chunk holds.
const rowChunk = 1024

// row is the report's row of a store bucket's start and group values.
func (f *folder) row(start time.Time, values []string) *row {
	f.key = f.key[:0]
	for i, at := range f.groupAt {
		if f.r.GroupBy[i] == ByMember {
			f.key = append(f.key, f.owners[values[at]]...)
		} else {
			f.key = append(f.key, values[at]...)
		}
		f.key = append(f.key, 0)
	}
	group, ok := f.set.groups[string(f.key)]
	if !ok {
		group = string(f.key)
		f.set.groups[group] = group
	}
	k := rowKey{start.UnixNano(), group}
	if r, ok := f.set.index[k]; ok {
		return r
	}
	// The store's first bucket starts at its hour, day or month; the
	// report's starts where the range does.
	return f.set.add(k, row{start: laterOf(start, f.from), group: group})
}

// tooMany tells whether the rows of usage priced in parts and the store
// buckets summed whole (which make at most as many rows) are more than
// maxRows: the report stops growing, and is refused.
func (f *folder) tooMany() bool {
	return f.partRows+len(f.whole.buckets) > maxRows
}

// storeBuckets adds up parts into the store's buckets.
type storeBuckets struct {
	index   map[string]int // by key: start, then group values
	buckets []storeBucket
	// values hold the buckets' group values, a bucket's from
	// storeBucket.values on.
	values []string
	key    []byte
}

type storeBucket struct {
	start  time.Time
	values int
	totals usage.Totals
}

// add adds a part to its bucket, past maxRows buckets no more.
func (s *storeBuckets) add(start time.Time, group []string, t usage.Totals) {
	s.key = binary.BigEndian.AppendUint64(s.key[:0], uint64(start.UnixNano()))
	for _, v := range group {
		s.key = append(append(s.key, v...), 0)
	}
	n, ok := s.index[string(s.key)]
	if !ok {
		if len(s.buckets) > maxRows {
			return
		}
		n = len(s.buckets)
		s.index[string(s.key)] = n
		s.buckets = append(s.buckets, storeBucket{start: start, values: len(s.values)})
		s.values = append(s.values, group...)
	}
	s.buckets[n].totals.Add(t)
}

func laterOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// buckets are the report's buckets of rows, grouped by dims, in ranges
// that end by to (loc's days and months).
func buckets(rows []*row, dims []usage.Dimension, g usage.Granularity, to time.Time, loc *time.Location) []Bucket {
	out := make([]Bucket, len(rows))
	for i, r := range rows {
		out[i] = Bucket{Start: r.start, End: bucketEnd(r.start, g, to, loc), Others: r.others,
			Figures: Figures{Totals: r.totals, Cost: r.cost.Decimal().String(), UnpricedCalls: r.unpriced}}
		if len(dims) > 0 && !r.others {
			out[i].Group = make(map[usage.Dimension]string, len(dims))
			values := r.group
			for _, d := range dims {
				value, rest, _ := strings.Cut(values, "\x00")
				out[i].Group[d], values = value, rest
			}
		}
	}
	return out
}

// sum is the figures of rows together.
func sum(rows []*row) Figures {
	var total row
	for _, r := range rows {
		total.add(r)
	}
	return Figures{Totals: total.totals, Cost: total.cost.Decimal().String(), UnpricedCalls: total.unpriced}
}

// keptValues tells whether a group's values pass the filters of several
// values, given by the position of the value they filter.
func keptValues(values []string, keep map[int]map[string]bool) bool {
	for at, allowed := range keep {
		if !allowed[values[at]] {
			return false
		}
	}
	return true
}

// keyOwners is the owner of each key ID of the buckets, whose values hold
// it at keyAt.
func keyOwners(ctx context.Context, store usage.Store, parts *storeBuckets, keyAt int) (map[string]string, error) {
	seen := map[string]bool{}
	ids := []string{}
	for _, b := range parts.buckets {
		if id := parts.values[b.values+keyAt]; !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return store.KeyOwners(ctx, ids)
}
