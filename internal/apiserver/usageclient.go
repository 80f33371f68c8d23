package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	"github.com/minimax/platform-hub/internal/serverclient"
	"github.com/minimax/platform-hub/internal/usagereport"
)

// UsageClient asks the server role for usage, as the management API's own
// identity: the API server has authorized the person asking already.
type UsageClient struct {
	// URL is the usage server's base URL.
	URL string
	// HTTP reaches it (its CA, timeouts).
	HTTP *http.Client
	// Token is the bearer token the usage server checks (TokenReview, then
	// create usagereports.hub.minimax.io).
	Token func() (string, error)
}

// usageServerError is an answer of the usage server other than 200.
type usageServerError struct {
	status  int
	message string
	// field is the request field the server refused, when it named one.
	field string
}

func (e *usageServerError) Error() string {
	return fmt.Sprintf("the usage server answered %d: %s", e.status, e.message)
}

// Report asks for a usage report.
func (c *UsageClient) Report(ctx context.Context, req usagereport.Request) (*usagereport.Report, error) {
	resp, err := serverclient.Post(ctx, c.HTTP, c.URL+usagereport.Path, c.Token, req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the usage server's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
				Field   string `json:"field"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, &usageServerError{status: resp.StatusCode, message: e.Error.Message, field: e.Error.Field}
	}
	report := &usagereport.Report{}
	if err := json.Unmarshal(body, report); err != nil {
		return nil, fmt.Errorf("decoding the usage server's report: %w", err)
	}
	return report, nil
}

// usageUnavailable is the answer when the usage server cannot answer: the
// cause (addresses, the token's file, the server's words) goes to the log,
// the caller gets a fixed message.
func usageUnavailable(ctx context.Context, cause error) error {
	klog.FromContext(ctx).Error(cause, "Asking the usage server")
	return apierrors.NewServiceUnavailable("the usage server cannot answer right now; retry later")
}
