package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/shopspring/decimal"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
)

// BenchmarkHardCapStop measures, under load through the gateway, how fast a
// Hard money cap stops traffic: the time from the completion of the call
// that crosses the cap to the first 429, and the overshoot, in money and in
// calls let through after the crossing one, next to the calls that were in
// flight when it crossed. That is the bound the design promises: the gateway
// counts its own metering on top of the server's last report, so only calls
// already admitted can overshoot. It also times the usage server's
// CapReached mark, the stop that every gateway replica sees.
//
// Each trial raises the cap by the cost of about 200 calls and runs 16
// clients until each is refused. Target: p99 under 1 s, overshoot no more
// than the calls in flight.
func BenchmarkHardCapStop(b *testing.B) {
	const trials = 40
	g := NewWithT(b)
	ctx := context.Background()
	cb := &capBench{g: g, in: decimal.RequireFromString("2.00"), out: decimal.RequireFromString("8.00"),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	org := &hubv1.Organization{ObjectMeta: metav1.ObjectMeta{Name: hubv1.OrganizationName}, Spec: hubv1.OrganizationSpec{
		Pricing: &hubv1.PriceList{Chat: &hubv1.TokenPricing{Default: &hubv1.TokenPrice{
			InputPer1MTokens: hubv1.Amount(cb.in.String()), OutputPer1MTokens: hubv1.Amount(cb.out.String())}}}}}
	g.Expect(env.Client.Create(ctx, org)).To(Succeed())
	defer func() { _ = env.Client.Delete(ctx, org) }()
	_, cb.key = issueKey(g, "gw-capbench", nil)
	cb.perCall = cb.call().cost
	g.Expect(cb.perCall.IsPositive()).To(BeTrue())

	results := make([]trialResult, 0, trials)
	for trial := range trials {
		r := cb.trial(ctx, trial == 0)
		if r.after > r.flying {
			fmt.Printf("trial %d: %d calls let through after the crossing one, %d in flight\n", trial, r.after, r.flying)
		}
		results = append(results, r)
	}
	report(b, g, results, cb.perCall)
}

// capBench drives the gateway for BenchmarkHardCapStop.
type capBench struct {
	g       Gomega
	http    *http.Client
	key     string
	in, out decimal.Decimal // prices per million tokens
	perCall decimal.Decimal
	capObj  *hubv1.SpendingCap

	mu    sync.Mutex
	spent decimal.Decimal // of every call answered 200, as the store prices it
}

// capCall is one call, as its client saw it.
type capCall struct {
	sent, done time.Time
	status     int
	cost       decimal.Decimal
}

// trialResult is what one trial measured.
type trialResult struct {
	toFirst429, toMark time.Duration
	after, flying      int
	overshoot          decimal.Decimal
}

func (cb *capBench) call() capCall {
	g := cb.g
	c := capCall{sent: time.Now()}
	req, err := http.NewRequest(http.MethodPost, gatewayURL+"/v1/chat/completions", bytes.NewReader([]byte(benchBody)))
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cb.key)
	resp, err := cb.http.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(err).NotTo(HaveOccurred())
	c.done, c.status = time.Now(), resp.StatusCode
	if c.status != http.StatusOK {
		return c
	}
	var answer struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	g.Expect(json.Unmarshal(body, &answer)).To(Succeed())
	c.cost = cb.in.Mul(decimal.NewFromInt(answer.Usage.PromptTokens)).
		Add(cb.out.Mul(decimal.NewFromInt(answer.Usage.CompletionTokens))).Div(decimal.NewFromInt(1_000_000))
	cb.mu.Lock()
	cb.spent = cb.spent.Add(c.cost)
	cb.mu.Unlock()
	return c
}

// trial raises the cap by about 200 calls' cost, waits for traffic to pass
// again, and runs 16 clients until each is refused.
func (cb *capBench) trial(ctx context.Context, first bool) trialResult {
	g := cb.g
	cb.mu.Lock()
	limit := cb.spent.Add(cb.perCall.Mul(decimal.NewFromInt(200))).Round(9)
	cb.mu.Unlock()
	if first {
		// A new cap is enforced exactly from its first evaluation, which
		// brings the cycle's spend so far.
		cb.capObj = &hubv1.SpendingCap{ObjectMeta: metav1.ObjectMeta{Namespace: "gw-capbench", Name: "bench"},
			Spec: hubv1.SpendingCapSpec{Enforcement: hubv1.CapHard, Limit: ptr.To(hubv1.Amount(limit.String()))}}
		g.Expect(env.Client.Create(ctx, cb.capObj)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cb.capObj), cb.capObj)).To(Succeed())
			g.Expect(cb.capObj.Status.EvaluatedAt).NotTo(BeNil())
		}, 10*time.Second).Should(Succeed())
	} else {
		patch := client.MergeFrom(cb.capObj.DeepCopy())
		cb.capObj.Spec.Limit = ptr.To(hubv1.Amount(limit.String()))
		g.Expect(env.Client.Patch(ctx, cb.capObj, patch)).To(Succeed())
	}
	g.Eventually(func() int { return cb.call().status }, 30*time.Second, 10*time.Millisecond).Should(Equal(http.StatusOK))
	cb.mu.Lock()
	before := cb.spent
	cb.mu.Unlock()

	marked, stopWatch := watchMark(ctx)
	defer close(stopWatch)
	var calls []capCall
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := cb.call()
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
				if c.status != http.StatusOK {
					g.Expect(c.status).To(Equal(http.StatusTooManyRequests))
					return
				}
			}
		}()
	}
	wg.Wait()
	r := analyse(g, calls, before, limit)
	select {
	case at := <-marked:
		r.toMark = at.Sub(r.crossedAt(calls, before, limit))
	case <-time.After(10 * time.Second):
		g.Expect("the usage server never marked the project CapReached").To(BeEmpty())
	}
	return r
}

// watchMark polls the API server for the project's CapReached condition,
// the usage server's own mark.
func watchMark(ctx context.Context) (<-chan time.Time, chan struct{}) {
	marked, stop := make(chan time.Time, 1), make(chan struct{})
	go func() {
		for {
			p := &hubv1.Project{}
			if env.Client.Get(ctx, client.ObjectKey{Name: "gw-capbench"}, p) == nil &&
				meta.IsStatusConditionTrue(p.Status.Conditions, hubv1.CapReachedCondition) {
				marked <- time.Now()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return marked, stop
}

// analyse finds the crossing call (the 200 whose completion brought the
// spend to the limit, in completion order) and measures around it.
func analyse(g Gomega, calls []capCall, before, limit decimal.Decimal) trialResult {
	slices.SortFunc(calls, func(a, b capCall) int { return a.done.Compare(b.done) })
	var r trialResult
	t0 := r.crossedAt(calls, before, limit)
	g.Expect(t0.IsZero()).To(BeFalse(), "the cap was crossed")
	total := before
	var first429 time.Time
	for _, c := range calls {
		total = total.Add(c.cost)
		if c.status != http.StatusOK && first429.IsZero() {
			first429 = c.done
		}
		if c.status == http.StatusOK && c.done.After(t0) {
			r.after++
		}
		if c.sent.Before(t0) && c.done.After(t0) {
			r.flying++
		}
	}
	r.toFirst429, r.overshoot = max(first429.Sub(t0), 0), total.Sub(limit)
	return r
}

// crossedAt is when the crossing call completed; calls are in completion
// order.
func (trialResult) crossedAt(calls []capCall, before, limit decimal.Decimal) time.Time {
	total := before
	for _, c := range calls {
		if total = total.Add(c.cost); c.status == http.StatusOK && total.GreaterThanOrEqual(limit) {
			return c.done
		}
	}
	return time.Time{}
}

func report(b *testing.B, g Gomega, results []trialResult, perCall decimal.Decimal) {
	toFirst, toMark := make([]time.Duration, 0, len(results)), make([]time.Duration, 0, len(results))
	maxAfter, maxFlying, worstExcess := 0, 0, 0
	maxMoney := decimal.Zero
	for _, r := range results {
		toFirst, toMark = append(toFirst, r.toFirst429), append(toMark, r.toMark)
		maxAfter, maxFlying = max(maxAfter, r.after), max(maxFlying, r.flying)
		worstExcess = max(worstExcess, r.after-r.flying)
		maxMoney = decimal.Max(maxMoney, r.overshoot)
	}
	p50, p99 := percentile(toFirst, 0.50), percentile(toFirst, 0.99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms-to-429")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms-to-429")
	b.ReportMetric(float64(maxAfter), "max-overshoot-calls")
	fmt.Printf("hard cap stop, %d trials x 16 clients: crossing call to first 429 p50 %v, p99 %v (target p99 < 1s)\n",
		len(results), p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	fmt.Printf("the usage server's CapReached mark (what stops every replica) after the crossing call: p50 %v, p99 %v\n",
		percentile(toMark, 0.50).Round(time.Millisecond), percentile(toMark, 0.99).Round(time.Millisecond))
	fmt.Printf("overshoot: at most %d calls after the crossing one (in flight at the crossing: at most %d; "+
		"worst calls beyond those in flight: %d), at most %s in money = %.1f calls' cost\n",
		maxAfter, maxFlying, worstExcess, maxMoney.StringFixed(6), maxMoney.Div(perCall).InexactFloat64())
	g.Expect(worstExcess).To(BeNumerically("<=", 0), "no call admitted after the crossing one completed")
}
