package pricing

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
	"k8s.io/utils/ptr"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// randomPrices is a price list whose prices have from none to 20 decimal
// places and up to 22 digits, so that some do not fit Sum's units.
func randomPrices(t *testing.T, r *rand.Rand) *PriceList {
	t.Helper()
	amount := func() hubv1.Amount {
		digits := 1 + r.IntN(22)
		coefficient := decimal.NewFromInt(1)
		for range digits {
			coefficient = coefficient.Mul(decimal.NewFromInt(10)).Add(decimal.NewFromInt(r.Int64N(10)))
		}
		return hubv1.Amount(coefficient.Shift(-int32(r.IntN(21))).String())
	}
	tokens := func() hubv1.TokenPrice {
		tp := hubv1.TokenPrice{InputPer1MTokens: amount(), OutputPer1MTokens: amount()}
		if r.IntN(2) == 0 {
			tp.CachedInputPer1MTokens = ptr.To(amount())
		}
		return tp
	}
	list := &hubv1.PriceList{
		Chat: &hubv1.TokenPricing{Models: []hubv1.ModelTokenPrice{{Name: "a", TokenPrice: tokens()}, {Name: "b", TokenPrice: tokens()}}},
		Video: &hubv1.VideoPricing{Models: []hubv1.ModelMinutePrice{{Name: "v", PerMinute: amount()}},
			DefaultPerMinute: ptr.To(amount())},
		FineTuning: &hubv1.FineTuningPricing{Models: []hubv1.ModelTrainingPrice{{Name: "f", Per1MTokens: amount()}},
			DefaultPer1MTokens: ptr.To(amount())},
		Storage: &hubv1.StoragePricing{PerGBMonth: amount()},
	}
	if r.IntN(2) == 0 {
		list.Chat.Default = ptr.To(tokens())
	}
	p, err := New(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// randomUsage is usage of any service and model, some unpriced, with
// counts from small to near the largest int64 (so that Sum overflows its
// units and carries on in decimals).
func randomUsage(r *rand.Rand) Usage {
	count := func() int64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return r.Int64N(10_000)
		case 2:
			return r.Int64N(1 << 40)
		}
		return math.MaxInt64 - r.Int64N(1000)
	}
	u := Usage{Service: []Service{Chat, Chat, Chat, Video, FineTuning, Storage, "other"}[r.IntN(7)],
		Model: []string{"a", "b", "v", "f", "unlisted"}[r.IntN(5)]}
	u.InputTokens, u.OutputTokens, u.CachedInputTokens = count(), count(), count()
	u.VideoSeconds, u.StorageByteHours = count(), count()
	return u
}

// TestSumIsTheSumOfCosts checks Sum against decimal Cost amounts, added one
// by one: the same total to the last digit, the same flags, and the same
// order between sums.
func TestSumIsTheSumOfCosts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for list := range 200 {
		p := randomPrices(t, r)
		var halves [2]Sum
		var want [2]decimal.Decimal
		for i := range 400 {
			u := randomUsage(r)
			c := p.Cost(u)
			defaulted, unpriced := p.Add(&halves[i%2], u)
			if defaulted != c.Defaulted || unpriced != c.Unpriced {
				t.Fatalf("price list %d, %+v: Add says defaulted %v, unpriced %v; Cost says %v, %v", list, u, defaulted, unpriced, c.Defaulted, c.Unpriced)
			}
			want[i%2] = want[i%2].Add(c.Amount)
		}
		for i := range halves {
			if got := halves[i].Decimal(); !got.Equal(want[i]) || got.String() != want[i].String() {
				t.Fatalf("price list %d: the sum is %s, the costs add up to %s", list, got, want[i])
			}
		}
		if got, want := halves[0].Cmp(halves[1]), want[0].Cmp(want[1]); got != want {
			t.Fatalf("price list %d: Cmp says %d, the decimals %d", list, got, want)
		}
		total := halves[0]
		total.AddSum(halves[1])
		if got, want := total.Decimal(), want[0].Add(want[1]); !got.Equal(want) {
			t.Fatalf("price list %d: AddSum gives %s, want %s", list, got, want)
		}
	}
}

// TestSumCountsSmallChatCostsInUnits checks that the usual case, chat at
// prices of a few decimals, is counted in units (the point of Sum) and
// compares without decimals.
func TestSumCountsSmallChatCostsInUnits(t *testing.T) {
	p := samplePrices(t)
	var a, b Sum
	p.Add(&a, Usage{Service: Chat, Model: "MiniMax-M2", InputTokens: 1_000_000, CachedInputTokens: 100_000, OutputTokens: 10})
	p.Add(&b, Usage{Service: Chat, Model: "unlisted", InputTokens: 5})
	if !a.rest.IsZero() || !b.rest.IsZero() || a.hi|a.lo == 0 {
		t.Fatalf("chat costs were not counted in units: %+v, %+v", a, b)
	}
	// 900,000 × 0.30 + 100,000 × 0.03 + 10 × 1.20, per million tokens.
	if got := a.Decimal().String(); got != "0.273012" {
		t.Fatalf("the sum is %s, want 0.273012", got)
	}
	if a.Cmp(b) != 1 || b.Cmp(a) != -1 || a.Cmp(a) != 0 || (Sum{}).Cmp(b) != -1 {
		t.Fatalf("Cmp orders %s and %s wrongly", a.Decimal(), b.Decimal())
	}
	// Prices of the list count in one unit, so sums of different models
	// add in units too.
	total := a
	total.AddSum(b)
	if !total.rest.IsZero() || total.Decimal().String() != "0.273017" {
		t.Fatalf("the costs of two models add up to %+v (%s), want 0.273017 in units", total, total.Decimal())
	}
}

// TestAdditiveCostsAddUp checks Additive's promise on random price lists:
// for usage it says adds up, the cost of two usages together is the sum of
// their costs, with the same flags.
func TestAdditiveCostsAddUp(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	additive := 0
	for range 200 {
		p := randomPrices(t, r)
		for range 200 {
			a, b := randomUsage(r), randomUsage(r)
			b.Service, b.Model = a.Service, a.Model
			if !p.Additive(a.Service, a.Model) {
				continue
			}
			additive++
			// Counts small enough that the sum fits in an int64, and cached
			// input within the input, as stored usage is.
			for _, u := range []*Usage{&a, &b} {
				u.InputTokens, u.OutputTokens, u.CachedInputTokens = u.InputTokens>>2, u.OutputTokens>>2, min(u.CachedInputTokens, u.InputTokens)>>2
				u.VideoSeconds, u.StorageByteHours = u.VideoSeconds>>2, u.StorageByteHours>>2
			}
			both := Usage{Service: a.Service, Model: a.Model, InputTokens: a.InputTokens + b.InputTokens,
				OutputTokens: a.OutputTokens + b.OutputTokens, CachedInputTokens: a.CachedInputTokens + b.CachedInputTokens,
				VideoSeconds: a.VideoSeconds + b.VideoSeconds, StorageByteHours: a.StorageByteHours + b.StorageByteHours}
			ca, cb, cab := p.Cost(a), p.Cost(b), p.Cost(both)
			if !cab.Amount.Equal(ca.Amount.Add(cb.Amount)) || cab.Unpriced != ca.Unpriced || cab.Defaulted != ca.Defaulted {
				t.Fatalf("%+v and %+v cost %+v and %+v apart, %+v together", a, b, ca, cb, cab)
			}
		}
	}
	if additive == 0 {
		t.Fatal("no usage was additive")
	}
	// Video divides: the costs of two usages do not always add up.
	p := samplePrices(t)
	if p.Additive(Video, "Hailuo-02") || p.Additive(Storage, "") || p.Additive(Chat, "unpriced") && !p.Priced(Chat, "unpriced") {
		t.Fatal("video, storage or unpriced usage is said to add up")
	}
	one := p.Cost(Usage{Service: Video, Model: "Hailuo-02", VideoSeconds: 1}).Amount
	if three := p.Cost(Usage{Service: Video, Model: "Hailuo-02", VideoSeconds: 3}).Amount; three.Equal(one.Add(one).Add(one)) {
		t.Fatalf("one second of video costs %s, three cost %s: the example no longer shows rounding", one, three)
	}
}
