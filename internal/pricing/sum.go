package pricing

import (
	"math/big"
	"math/bits"

	"github.com/shopspring/decimal"
)

// Sum is an exact running total of costs, for adding up many of them fast:
// a usage report prices tens of thousands of groups, and a decimal
// multiplication and addition allocate each time.
//
// A token price is a decimal per million tokens, so the cost of whole
// tokens is a whole number of a price list's unit (10^-6 of the smallest
// digit its token prices use): Sum keeps those costs as a 128-bit count of
// units, which adds without allocating. Every other cost (video, storage,
// a price with more digits than fit, a count that would overflow) is kept
// as a decimal beside it. Decimal gives the total, equal to the sum of the
// Cost amounts of the same usage, to the last digit. The zero Sum is zero.
type Sum struct {
	// hi and lo are the count of units, unit the decimal exponent of one
	// unit (set with the first count).
	hi, lo uint64
	unit   int32
	// rest holds the costs not counted in units.
	rest decimal.Decimal
}

// Add adds the cost of u to s, exactly as adding Cost(u).Amount would, and
// tells whether u was priced at its service's default price or is unpriced
// (as Cost.Defaulted and Cost.Unpriced).
func (p *PriceList) Add(s *Sum, u Usage) (defaulted, unpriced bool) {
	switch u.Service {
	case Chat:
		tp, ok := p.chat[u.Model]
		if !ok {
			if p.chatDefault == nil {
				return false, u.InputTokens != 0 || u.OutputTokens != 0
			}
			tp, defaulted = *p.chatDefault, true
		}
		cached := min(max(u.CachedInputTokens, 0), u.InputTokens)
		if tp.units != nil && u.InputTokens >= 0 && u.OutputTokens >= 0 &&
			s.addUnits(tp.units.unit, tp.units.input, u.InputTokens-cached, tp.units.cachedInput, cached, tp.units.output, u.OutputTokens) {
			return defaulted, false
		}
	case FineTuning:
		// Only a model's own price: the default's usage goes through Cost,
		// which says it was defaulted.
		if units, ok := p.fineTuneUnits[u.Model]; ok && u.InputTokens >= 0 && s.addUnits(units.unit, units.input, u.InputTokens, 0, 0, 0, 0) {
			return false, false
		}
	}
	c := p.Cost(u)
	if !c.Amount.IsZero() {
		s.rest = s.rest.Add(c.Amount)
	}
	return c.Defaulted, c.Unpriced
}

// Additive tells whether the cost of usage of a model of a service adds
// up: whether the cost of two usages together is the sum of their costs,
// to the last digit, with the same flags, for usage whose cached input
// tokens are within its input tokens (as stored usage always is, and so
// its sums). So it is for a price per token
// (chat, fine-tuning), which multiplies; not for video and storage, whose
// prices divide and round the quotient, nor for unpriced usage, whose
// calls count as unpriced only when it has tokens. A sum of the first kind
// may be priced in parts.
func (p *PriceList) Additive(s Service, model string) bool {
	return (s == Chat || s == FineTuning) && p.Priced(s, model)
}

// addUnits adds a*x + b*y + c*z units of 10^unit to s, and tells whether
// they fit (when they do not, s is unchanged).
func (s *Sum) addUnits(unit int32, a uint64, x int64, b uint64, y int64, c uint64, z int64) bool {
	if s.hi|s.lo != 0 && s.unit != unit {
		return false
	}
	hi, lo := bits.Mul64(a, uint64(x))
	var carry, over uint64
	for _, term := range [2][2]uint64{{b, uint64(y)}, {c, uint64(z)}} {
		th, tl := bits.Mul64(term[0], term[1])
		lo, carry = bits.Add64(lo, tl, 0)
		hi, over = bits.Add64(hi, th, carry)
		if over != 0 {
			return false
		}
	}
	lo, carry = bits.Add64(s.lo, lo, 0)
	hi, over = bits.Add64(s.hi, hi, carry)
	if over != 0 {
		return false
	}
	s.hi, s.lo, s.unit = hi, lo, unit
	return true
}

// AddSum adds o to s.
func (s *Sum) AddSum(o Sum) {
	if o.hi|o.lo != 0 {
		if s.hi|s.lo == 0 {
			s.unit = o.unit
		}
		lo, carry := bits.Add64(s.lo, o.lo, 0)
		hi, over := bits.Add64(s.hi, o.hi, carry)
		if s.unit == o.unit && over == 0 {
			s.hi, s.lo = hi, lo
		} else {
			s.rest = s.rest.Add(o.units())
		}
	}
	if !o.rest.IsZero() {
		s.rest = s.rest.Add(o.rest)
	}
}

// units is the cost s counts in units, as a decimal.
func (s *Sum) units() decimal.Decimal {
	if s.hi == 0 {
		return decimal.NewFromBigInt(new(big.Int).SetUint64(s.lo), s.unit)
	}
	n := new(big.Int).Lsh(new(big.Int).SetUint64(s.hi), 64)
	return decimal.NewFromBigInt(n.Or(n, new(big.Int).SetUint64(s.lo)), s.unit)
}

// Decimal is the total.
func (s Sum) Decimal() decimal.Decimal {
	if s.hi|s.lo == 0 {
		if s.rest.IsZero() {
			return decimal.Zero
		}
		return s.rest
	}
	if s.rest.IsZero() {
		return s.units()
	}
	return s.units().Add(s.rest)
}

// Cmp compares s with o: -1, 0 or +1 as s is less than, equal to or more
// than o.
func (s Sum) Cmp(o Sum) int {
	if s.rest.IsZero() && o.rest.IsZero() && (s.unit == o.unit || s.hi|s.lo == 0 || o.hi|o.lo == 0) {
		switch {
		case s.hi != o.hi:
			return cmpUint(s.hi, o.hi)
		default:
			return cmpUint(s.lo, o.lo)
		}
	}
	return s.Decimal().Cmp(o.Decimal())
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// tokenUnits is a token price in whole units of 10^unit per token: the
// price per million tokens shifted by six places.
type tokenUnits struct {
	unit                       int32
	input, cachedInput, output uint64
}

// countInUnits sets the whole units of the token prices, for Sum: one unit
// for the whole list, the smallest its prices need, so that every sum of
// its costs adds in units. A price whose coefficient would not fit in 64
// bits has none, and its costs add as decimals.
func (p *PriceList) countInUnits() {
	unit := int32(0)
	for _, tp := range p.chat {
		unit = min(unit, tp.input.Exponent(), tp.cachedInput.Exponent(), tp.output.Exponent())
	}
	if tp := p.chatDefault; tp != nil {
		unit = min(unit, tp.input.Exponent(), tp.cachedInput.Exponent(), tp.output.Exponent())
	}
	for _, price := range p.fineTune {
		unit = min(unit, price.Exponent())
	}
	for model, tp := range p.chat {
		tp.units = unitsOf(unit, tp.input, tp.cachedInput, tp.output)
		p.chat[model] = tp
	}
	if tp := p.chatDefault; tp != nil {
		tp.units = unitsOf(unit, tp.input, tp.cachedInput, tp.output)
	}
	for model, price := range p.fineTune {
		if units := unitsOf(unit, price, price, price); units != nil {
			p.fineTuneUnits[model] = units
		}
	}
}

// unitsOf expresses input, cached input and output prices per million
// tokens in whole units of 10^(unit-6) per token, or returns nil when one
// does not fit in 64 bits.
func unitsOf(unit int32, input, cachedInput, output decimal.Decimal) *tokenUnits {
	out := &tokenUnits{unit: unit - 6}
	for _, f := range []struct {
		price decimal.Decimal
		units *uint64
	}{{input, &out.input}, {cachedInput, &out.cachedInput}, {output, &out.output}} {
		n := new(big.Int).Mul(f.price.Coefficient(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(f.price.Exponent()-unit)), nil))
		if n.Sign() < 0 || !n.IsUint64() {
			return nil
		}
		*f.units = n.Uint64()
	}
	return out
}
