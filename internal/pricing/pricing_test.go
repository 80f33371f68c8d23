package pricing

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

func samplePrices(t *testing.T) *PriceList {
	t.Helper()
	p, err := New(&hubv1.PriceList{
		Chat: &hubv1.TokenPricing{
			Default: &hubv1.TokenPrice{InputPer1MTokens: "1.00", OutputPer1MTokens: "4.00"},
			Models: []hubv1.ModelTokenPrice{{
				Name: "MiniMax-M2", TokenPrice: hubv1.TokenPrice{InputPer1MTokens: "0.30", OutputPer1MTokens: "1.20",
					CachedInputPer1MTokens: ptr.To(hubv1.Amount("0.03"))},
			}},
		},
		Video:      &hubv1.VideoPricing{Models: []hubv1.ModelMinutePrice{{Name: "Hailuo-02", PerMinute: "0.45"}}},
		FineTuning: &hubv1.FineTuningPricing{DefaultPer1MTokens: ptr.To(hubv1.Amount("3"))},
		Storage:    &hubv1.StoragePricing{PerGBMonth: "0.02"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCost(t *testing.T) {
	p := samplePrices(t)
	tests := []struct {
		name          string
		usage         Usage
		want          string
		wantDefaulted bool
		wantUnpriced  bool
	}{
		{"listed chat model", Usage{Service: Chat, Model: "MiniMax-M2", InputTokens: 1_000_000, OutputTokens: 500_000}, "0.9", false, false},
		{"cached input at the cached price", Usage{Service: Chat, Model: "MiniMax-M2", InputTokens: 1_000_000, CachedInputTokens: 600_000}, "0.138", false, false},
		{"cached input without a cached price costs the input price", Usage{Service: Chat, Model: "other", InputTokens: 1_000_000, CachedInputTokens: 600_000}, "1", true, false},
		{"cached beyond the input is priced as input, never as a credit", Usage{Service: Chat, Model: "MiniMax-M2", InputTokens: 100, CachedInputTokens: 1_000}, "0.000003", false, false},
		{"one token is priced exactly", Usage{Service: Chat, Model: "MiniMax-M2", InputTokens: 1}, "0.0000003", false, false},
		{"unlisted chat model uses the default", Usage{Service: Chat, Model: "other", InputTokens: 2_000_000, OutputTokens: 1_000_000}, "6", true, false},
		{"video per minute", Usage{Service: Video, Model: "Hailuo-02", VideoSeconds: 90}, "0.675", false, false},
		{"unlisted video model without default is unpriced", Usage{Service: Video, Model: "other", VideoSeconds: 6}, "0", false, true},
		{"fine-tuning by default price", Usage{Service: FineTuning, Model: "MiniMax-M2", InputTokens: 250_000}, "0.75", true, false},
		{"storage: 1 GB for a 730-hour month", Usage{Service: Storage, StorageByteHours: 730_000_000_000}, "0.02", false, false},
		{"no usage is free, not unpriced", Usage{Service: Video, Model: "other"}, "0", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Cost(tt.usage)
			if got.Amount.String() != tt.want || got.Defaulted != tt.wantDefaulted || got.Unpriced != tt.wantUnpriced {
				t.Fatalf("Cost = %s (defaulted %v, unpriced %v), want %s (defaulted %v, unpriced %v)",
					got.Amount, got.Defaulted, got.Unpriced, tt.want, tt.wantDefaulted, tt.wantUnpriced)
			}
		})
	}
}

func TestSumIsExact(t *testing.T) {
	// A float would drift here: ten million one-token calls at 0.30 per 1M.
	p := samplePrices(t)
	one := p.Cost(Usage{Service: Chat, Model: "MiniMax-M2", InputTokens: 1}).Amount
	sum := one
	for range 10_000_000 - 1 {
		sum = sum.Add(one)
	}
	if sum.String() != "3" {
		t.Fatalf("sum = %s, want 3", sum)
	}
}

func TestIncomplete(t *testing.T) {
	if got := samplePrices(t).Incomplete(); len(got) != 1 || got[0] != Video {
		t.Fatalf("Incomplete = %v, want [video]", got)
	}
	empty, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.Incomplete(); len(got) != 4 {
		t.Fatalf("Incomplete of no price list = %v, want all four services", got)
	}
	if c := empty.Cost(Usage{Service: Chat, Model: "x", InputTokens: 5}); !c.Unpriced {
		t.Fatal("usage without any price must be unpriced, never free")
	}
}

func TestNewRejectsBadPrices(t *testing.T) {
	_, err := New(&hubv1.PriceList{Storage: &hubv1.StoragePricing{PerGBMonth: "-1"}})
	if err == nil {
		t.Fatal("a negative price was accepted")
	}
	if want := "spec.pricing.storage.perGBMonth"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}
