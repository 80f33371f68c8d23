package notify

import (
	"context"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	hubv1 "github.com/minimax/platform-hub/api/v1alpha1"
	"github.com/minimax/platform-hub/internal/alertlog"
)

// Outbox records alerts for delivery: it resolves the channels each alert
// goes to, records the alert with a delivery per channel in the store, and
// wakes the dispatcher. Recording is idempotent by alert ID, so every
// replica may fire the same alert and it is recorded (and sent) once.
type Outbox struct {
	Client client.Client
	Store  alertlog.Store
	// HubNamespace holds the organization's default channels.
	HubNamespace string
	// Wake, when set, is called after new alerts were recorded.
	Wake func()
}

// Channels lists where an alert about an object in namespace goes: the
// named channels of that namespace (all of them when named is nil) and the
// organization's default channels, each once, as namespace/name.
func (o *Outbox) Channels(ctx context.Context, namespace string, named []string) ([]string, error) {
	var out []string
	if named == nil {
		list := &hubv1.NotificationChannelList{}
		if err := o.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("listing the notification channels of %s: %w", namespace, err)
		}
		for i := range list.Items {
			out = append(out, namespace+"/"+list.Items[i].Name)
		}
	} else {
		for _, n := range named {
			out = append(out, namespace+"/"+n)
		}
	}
	defaults := &hubv1.NotificationChannelList{}
	if err := o.Client.List(ctx, defaults, client.InNamespace(o.HubNamespace)); err != nil {
		return nil, fmt.Errorf("listing the default notification channels: %w", err)
	}
	for i := range defaults.Items {
		if defaults.Items[i].Spec.Default {
			out = append(out, o.HubNamespace+"/"+defaults.Items[i].Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Record records alerts, each to channels, and returns those that were new.
func (o *Outbox) Record(ctx context.Context, channels []string, alerts []alertlog.Alert) ([]alertlog.Alert, error) {
	for i := range alerts {
		alerts[i].Deliveries = make([]alertlog.Delivery, len(channels))
		for j, c := range channels {
			alerts[i].Deliveries[j] = alertlog.Delivery{Channel: c}
		}
	}
	recorded, err := o.Store.RecordAlerts(ctx, alerts)
	if err != nil {
		return nil, err
	}
	if len(recorded) > 0 && o.Wake != nil {
		o.Wake()
	}
	return recorded, nil
}
