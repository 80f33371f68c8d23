package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/keys"
	"github.com/minimax/platform-hub/internal/scheme"
)

// The observer watches the whole suite for key material where it must never
// be: it harvests every key the hub writes into Secrets, and records every
// event and every APIKey (status included) the API server shows, and every
// scrape of the manager's metrics. After the tests, checkNoKeyMaterialLeaked
// looks for each harvested secret in those records and in the manager's logs,
// which are captured at full verbosity.
var observed = struct {
	mu       sync.Mutex
	secrets  map[string]bool // the random part of every key seen
	events   bytes.Buffer
	apiKeys  bytes.Buffer
	metrics  bytes.Buffer
	scrapes  int
	problems []string
}{secrets: map[string]bool{}}

// keysSeenByTests counts the keys the tests themselves read from Secrets, so
// that an observer which harvested nothing fails the check instead of
// passing it.
var keysSeenByTests atomic.Int64

func startObserver() (stop func(), err error) {
	wc, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	observe := func(list client.ObjectList, opts []client.ListOption, record func(watch.Event)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				w, err := wc.Watch(ctx, list, opts...)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				for ev := range w.ResultChan() {
					record(ev)
				}
			}
		}()
	}
	observe(&corev1.SecretList{}, []client.ListOption{client.HasLabels{hubv1.APIKeyLabel}}, func(ev watch.Event) {
		if s, ok := ev.Object.(*corev1.Secret); ok {
			for _, v := range s.Data {
				if k, err := keys.Parse(string(v)); err == nil {
					observed.mu.Lock()
					observed.secrets[secretPart(k)] = true
					observed.mu.Unlock()
				}
			}
		}
	})
	observe(&eventsv1.EventList{}, nil, func(ev watch.Event) { recordJSON(&observed.events, ev.Object) })
	observe(&hubv1.APIKeyList{}, nil, func(ev watch.Event) { recordJSON(&observed.apiKeys, ev.Object) })

	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			scrapeMetrics(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// scrapeMetrics reads the manager's metrics endpoint and checks the scrape at
// once against the secrets known so far (keeping every scrape would take too
// much memory); the last scrape is kept for the final check.
func scrapeMetrics(ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return // the manager is restarting
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	observed.mu.Lock()
	defer observed.mu.Unlock()
	observed.scrapes++
	observed.metrics.Reset()
	observed.metrics.Write(body)
	for s := range observed.secrets {
		if bytes.Contains(body, []byte(s)) {
			observed.problems = append(observed.problems, "a key's secret appeared in the metrics")
		}
	}
}

func recordJSON(buf *bytes.Buffer, obj any) {
	raw, _ := json.Marshal(obj)
	observed.mu.Lock()
	defer observed.mu.Unlock()
	buf.Write(raw)
	buf.WriteByte('\n')
}

// checkNoKeyMaterialLeaked fails if any harvested secret appears in the
// manager's logs, events, APIKey objects or metrics.
func checkNoKeyMaterialLeaked() error {
	observed.mu.Lock()
	defer observed.mu.Unlock()
	if keysSeenByTests.Load() == 0 {
		fmt.Println("leak check: no test issued a key in this run; nothing to check")
		return nil
	}
	if len(observed.secrets) == 0 || observed.scrapes == 0 || observed.events.Len() == 0 ||
		observed.apiKeys.Len() == 0 || managerLogs.Len() == 0 {
		return fmt.Errorf("the observer saw too little to judge: %d keys, %d scrapes, %d bytes of events, "+
			"%d bytes of APIKeys, %d bytes of logs", len(observed.secrets), observed.scrapes,
			observed.events.Len(), observed.apiKeys.Len(), managerLogs.Len())
	}
	problems := append([]string(nil), observed.problems...)
	places := map[string][]byte{
		"the manager's logs": managerLogs.Bytes(),
		"events":             observed.events.Bytes(),
		"APIKey objects":     observed.apiKeys.Bytes(),
		"the metrics":        observed.metrics.Bytes(),
	}
	problems = append(problems, findSecrets(observed.secrets, places)...)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Printf("leak check: %d issued keys absent from %d bytes of logs, %d of events, %d of APIKeys, %d metrics scrapes\n",
		len(observed.secrets), managerLogs.Len(), observed.events.Len(), observed.apiKeys.Len(), observed.scrapes)
	return nil
}

func findSecrets(secrets map[string]bool, places map[string][]byte) []string {
	var problems []string
	for where, text := range places {
		for s := range secrets {
			if bytes.Contains(text, []byte(s)) {
				problems = append(problems, "a key's secret appeared in "+where)
				break
			}
		}
	}
	return problems
}

// secretPart is the random part of a key: a leak of it is a leak, whatever
// surrounds it.
func secretPart(k keys.Key) string {
	s := k.Reveal()
	return s[len(keys.Prefix)+keys.IDLength+1 : len(s)-keys.ChecksumLength]
}

// TestLeakCheckFindsLeaks proves that the final check can fail.
func TestLeakCheckFindsLeaks(t *testing.T) {
	k, err := keys.New()
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]bool{secretPart(k): true}
	logLine := fmt.Sprintf(`{"level":"debug","msg":"Wrote Secret","data":%q}`, k.Reveal())
	if got := findSecrets(secrets, map[string][]byte{"logs": []byte(logLine)}); len(got) != 1 {
		t.Fatalf("a key in a log line was not found: %v", got)
	}
	if got := findSecrets(secrets, map[string][]byte{"logs": []byte(fmt.Sprint(k))}); len(got) != 0 {
		t.Fatalf("a redacted key was reported as a leak: %v", got)
	}
}
