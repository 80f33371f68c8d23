// Package pricing turns usage into money with the Organization's price list.
// Money is decimal (github.com/shopspring/decimal), never float: prices come
// from the API as decimal strings, and costs are computed from integer usage
// totals, so every figure is exact.
package pricing

import (
	"fmt"
	"sort"

	"github.com/shopspring/decimal"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// Service is a billed platform service.
type Service string

// Services.
const (
	Chat       Service = "chat"
	Video      Service = "video"
	FineTuning Service = "fine_tuning"
	Storage    Service = "storage"
)

// Usage is what one model of one service consumed.
type Usage struct {
	Service Service
	Model   string
	// InputTokens and OutputTokens count tokens (chat, and training tokens
	// for fine-tuning in InputTokens).
	InputTokens, OutputTokens int64
	// CachedInputTokens are the part of InputTokens read from a prompt
	// cache (chat): priced at the model's cached input price where it has
	// one, at its input price otherwise.
	CachedInputTokens int64
	// VideoSeconds counts seconds of generated video.
	VideoSeconds int64
	// StorageByteHours counts bytes held times hours held.
	StorageByteHours int64
}

// Cost is the price of some usage.
type Cost struct {
	Amount decimal.Decimal
	// Defaulted is true when the model had no price of its own and the
	// service's default price was used.
	Defaulted bool
	// Unpriced is true when neither the model nor the service has a price:
	// Amount is zero, and the usage must be reported as unpriced, never as
	// free.
	Unpriced bool
}

var (
	secondsPerMin = decimal.NewFromInt(60)
	// A gigabyte-month is 10^9 bytes held for 730 hours (the average month).
	byteHoursPerGBMonth = decimal.NewFromInt(730_000_000_000)
)

// PriceList prices usage. Build it once per Organization generation with New.
type PriceList struct {
	chatDefault   *tokenPrice
	chat          map[string]tokenPrice
	videoDefault  *decimal.Decimal
	video         map[string]decimal.Decimal
	fineTuneDef   *decimal.Decimal
	fineTune      map[string]decimal.Decimal
	storagePerGBM *decimal.Decimal
	// fineTuneUnits are the models' own fine-tuning prices in whole
	// units, for Sum (tokenPrice.units for chat).
	fineTuneUnits map[string]*tokenUnits
}

// tokenPrice is per million tokens; cachedInput is input unless the price
// list names a cached input price. units are the same prices in whole
// units, for Sum, or nil when they do not fit.
type tokenPrice struct {
	input, cachedInput, output decimal.Decimal
	units                      *tokenUnits
}

// New parses a price list. A nil list prices nothing: every usage is unpriced.
func New(list *hubv1.PriceList) (*PriceList, error) {
	p := &PriceList{
		chat:          map[string]tokenPrice{},
		video:         map[string]decimal.Decimal{},
		fineTune:      map[string]decimal.Decimal{},
		fineTuneUnits: map[string]*tokenUnits{},
	}
	if list == nil {
		return p, nil
	}
	var err error
	if p.chatDefault, err = parseChat(list.Chat, p.chat); err != nil {
		return nil, err
	}
	if v := list.Video; v != nil {
		if p.videoDefault, err = parseOptional("spec.pricing.video.defaultPerMinute", v.DefaultPerMinute); err != nil {
			return nil, err
		}
		for i, m := range v.Models {
			if p.video[m.Name], err = parse(fmt.Sprintf("spec.pricing.video.models[%d].perMinute", i), m.PerMinute); err != nil {
				return nil, err
			}
		}
	}
	if f := list.FineTuning; f != nil {
		if p.fineTuneDef, err = parseOptional("spec.pricing.fineTuning.defaultPer1MTokens", f.DefaultPer1MTokens); err != nil {
			return nil, err
		}
		for i, m := range f.Models {
			if p.fineTune[m.Name], err = parse(fmt.Sprintf("spec.pricing.fineTuning.models[%d].per1MTokens", i), m.Per1MTokens); err != nil {
				return nil, err
			}
		}
	}
	if s := list.Storage; s != nil {
		d, err := parse("spec.pricing.storage.perGBMonth", s.PerGBMonth)
		if err != nil {
			return nil, err
		}
		p.storagePerGBM = &d
	}
	p.countInUnits()
	return p, nil
}

// parseChat fills models with the per-model chat prices and returns the
// default price, if any.
func parseChat(c *hubv1.TokenPricing, models map[string]tokenPrice) (*tokenPrice, error) {
	if c == nil {
		return nil, nil
	}
	for i, m := range c.Models {
		tp, err := parseTokenPrice(fmt.Sprintf("spec.pricing.chat.models[%d]", i), m.TokenPrice)
		if err != nil {
			return nil, err
		}
		models[m.Name] = tp
	}
	if c.Default == nil {
		return nil, nil
	}
	tp, err := parseTokenPrice("spec.pricing.chat.default", *c.Default)
	return &tp, err
}

// Cost prices one usage.
func (p *PriceList) Cost(u Usage) Cost {
	switch u.Service {
	case Chat:
		tp, ok := p.chat[u.Model]
		defaulted := false
		if !ok {
			if p.chatDefault == nil {
				return Cost{Amount: decimal.Zero, Unpriced: u.InputTokens != 0 || u.OutputTokens != 0}
			}
			tp, defaulted = *p.chatDefault, true
		}
		// Cached tokens are a part of the input; a figure beyond it (which
		// validation refuses) is priced as input, never as a credit.
		cached := min(max(u.CachedInputTokens, 0), u.InputTokens)
		amount := tp.input.Mul(decimal.NewFromInt(u.InputTokens - cached)).
			Add(tp.cachedInput.Mul(decimal.NewFromInt(cached))).
			Add(tp.output.Mul(decimal.NewFromInt(u.OutputTokens))).
			Shift(-6)
		return Cost{Amount: amount, Defaulted: defaulted}
	case Video:
		return perUnit(p.video, p.videoDefault, u.Model, decimal.NewFromInt(u.VideoSeconds).Div(secondsPerMin), u.VideoSeconds != 0)
	case FineTuning:
		return perUnit(p.fineTune, p.fineTuneDef, u.Model, decimal.NewFromInt(u.InputTokens).Shift(-6), u.InputTokens != 0)
	case Storage:
		if p.storagePerGBM == nil {
			return Cost{Amount: decimal.Zero, Unpriced: u.StorageByteHours != 0}
		}
		return Cost{Amount: p.storagePerGBM.Mul(decimal.NewFromInt(u.StorageByteHours)).Div(byteHoursPerGBMonth)}
	}
	return Cost{Amount: decimal.Zero, Unpriced: true}
}

func perUnit(models map[string]decimal.Decimal, def *decimal.Decimal, model string, units decimal.Decimal, used bool) Cost {
	if price, ok := models[model]; ok {
		return Cost{Amount: price.Mul(units)}
	}
	if def == nil {
		return Cost{Amount: decimal.Zero, Unpriced: used}
	}
	return Cost{Amount: def.Mul(units), Defaulted: true}
}

// Priced tells whether usage of a model of a service has a price: its own,
// or the service's default.
func (p *PriceList) Priced(s Service, model string) bool {
	switch s {
	case Chat:
		_, ok := p.chat[model]
		return ok || p.chatDefault != nil
	case Video:
		_, ok := p.video[model]
		return ok || p.videoDefault != nil
	case FineTuning:
		_, ok := p.fineTune[model]
		return ok || p.fineTuneDef != nil
	case Storage:
		return p.storagePerGBM != nil
	}
	return false
}

// Lists tells whether the price list names a model of a service (a price of
// its own, not a default): the models a metric may name.
func (p *PriceList) Lists(s Service, model string) bool {
	var ok bool
	switch s {
	case Chat:
		_, ok = p.chat[model]
	case Video:
		_, ok = p.video[model]
	case FineTuning:
		_, ok = p.fineTune[model]
	}
	return ok
}

// Incomplete lists, sorted, the services whose usage of unlisted models
// cannot be priced because the service has no default price. An empty result
// means every usage can be priced.
func (p *PriceList) Incomplete() []Service {
	var missing []Service
	if p.chatDefault == nil {
		missing = append(missing, Chat)
	}
	if p.videoDefault == nil {
		missing = append(missing, Video)
	}
	if p.fineTuneDef == nil {
		missing = append(missing, FineTuning)
	}
	if p.storagePerGBM == nil {
		missing = append(missing, Storage)
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	return missing
}

func parseTokenPrice(path string, tp hubv1.TokenPrice) (tokenPrice, error) {
	in, err := parse(path+".inputPer1MTokens", tp.InputPer1MTokens)
	if err != nil {
		return tokenPrice{}, err
	}
	out, err := parse(path+".outputPer1MTokens", tp.OutputPer1MTokens)
	if err != nil {
		return tokenPrice{}, err
	}
	cached, err := parseOptional(path+".cachedInputPer1MTokens", tp.CachedInputPer1MTokens)
	if err != nil {
		return tokenPrice{}, err
	}
	if cached == nil {
		cached = &in
	}
	return tokenPrice{input: in, cachedInput: *cached, output: out}, nil
}

func parseOptional(path string, a *hubv1.Amount) (*decimal.Decimal, error) {
	if a == nil {
		return nil, nil
	}
	d, err := parse(path, *a)
	return &d, err
}

// parse reads a price. The API validates the format; this guards against a
// price list that bypassed validation.
func parse(path string, a hubv1.Amount) (decimal.Decimal, error) {
	d, err := decimal.NewFromString(string(a))
	if err != nil {
		return decimal.Zero, fmt.Errorf("%s: %q is not a decimal amount: %w", path, a, err)
	}
	if d.IsNegative() {
		return decimal.Zero, fmt.Errorf("%s: %q is negative", path, a)
	}
	return d, nil
}
