package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	mgmtv1alpha1 "github.com/minimax/platform-hub/api/management/v1alpha1"
	"github.com/minimax/platform-hub/internal/csvexport"
)

// csvMediaType is served besides JSON, YAML and protobuf: a client that
// asks for it (Accept: text/csv) gets usage reports and pages of usage
// records as CSV (RFC 4180, formula cells neutralised by csvexport), for
// spreadsheets.
const csvMediaType = "text/csv"

// withCSV adds the CSV form to the group's serializers. Content negotiation
// of k8s.io/apiserver then answers Accept: text/csv with it.
type withCSV struct{ runtime.NegotiatedSerializer }

func (n withCSV) SupportedMediaTypes() []runtime.SerializerInfo {
	return append(slices.Clone(n.NegotiatedSerializer.SupportedMediaTypes()), runtime.SerializerInfo{
		MediaType: csvMediaType, MediaTypeType: "text", MediaTypeSubType: "csv", EncodesAsText: true, Serializer: csvSerializer{},
	})
}

// csvSerializer writes the CSV form of the kinds that have one; it reads
// nothing.
type csvSerializer struct{}

func (csvSerializer) Identifier() runtime.Identifier { return "hub-csv" }

func (csvSerializer) Decode([]byte, *schema.GroupVersionKind, runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	return nil, nil, errors.New("the management API reads JSON, YAML or protobuf; CSV is a form of its answers only")
}

// Encode writes obj as CSV: a usage report's buckets, a page of usage
// records, or an error's code, reason and message.
func (csvSerializer) Encode(obj runtime.Object, w io.Writer) error {
	switch o := obj.(type) {
	case *mgmtv1alpha1.UsageReport:
		return writeCSV(w, reportCSV(o))
	case *mgmtv1alpha1.UsageRecordList:
		return writeCSV(w, recordsCSV(o))
	case *metav1.Status:
		return writeCSV(w, [][]string{{"code", "reason", "message"}, {strconv.Itoa(int(o.Code)), string(o.Reason), o.Message}})
	}
	return fmt.Errorf("%s has no CSV form: ask for usage reports or usage records, or for JSON", obj.GetObjectKind().GroupVersionKind().Kind)
}

func writeCSV(w io.Writer, rows [][]string) error {
	var buf bytes.Buffer
	cw := csvexport.NewWriter(&buf)
	for _, row := range rows {
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	_, err := w.Write(buf.Bytes())
	return err
}

// reportCSV is a usage report's buckets as CSV rows, a header first: the
// bucket's bounds (RFC 3339, UTC), the six group values (empty for a
// dimension the report does not group by), the figures, and the currency.
func reportCSV(r *mgmtv1alpha1.UsageReport) [][]string {
	rows := make([][]string, 0, 1+len(r.Status.Buckets))
	rows = append(rows, strings.Split(reportColumns, ","))
	for _, b := range r.Status.Buckets {
		if b.Others {
			b = othersRow(b, r.Spec.GroupBy)
		}
		rows = append(rows, []string{csvTime(b.StartTime), csvTime(b.EndTime), b.Project, b.KeyID, b.Service, b.Model,
			b.Endpoint, b.Member, itoa(b.Calls), itoa(b.InputTokens), itoa(b.CachedInputTokens), itoa(b.OutputTokens),
			itoa(b.VideoSeconds),
			itoa(b.StorageByteHours), b.Cost, r.Status.Currency, itoa(b.UnpricedCalls)})
	}
	return rows
}

// othersLabel stands, in a CSV, for the groups topGroups summed.
const othersLabel = "(others)"

// othersRow is the bucket of the others with othersLabel in the columns of
// the dimensions grouped by, so that a CSV row names what it sums.
func othersRow(b mgmtv1alpha1.UsageBucket, dims []mgmtv1alpha1.Dimension) mgmtv1alpha1.UsageBucket {
	for _, d := range dims {
		switch d {
		case mgmtv1alpha1.DimensionProject:
			b.Project = othersLabel
		case mgmtv1alpha1.DimensionKeyID:
			b.KeyID = othersLabel
		case mgmtv1alpha1.DimensionService:
			b.Service = othersLabel
		case mgmtv1alpha1.DimensionModel:
			b.Model = othersLabel
		case mgmtv1alpha1.DimensionEndpoint:
			b.Endpoint = othersLabel
		case mgmtv1alpha1.DimensionMember:
			b.Member = othersLabel
		}
	}
	return b
}

// recordsCSV is a page of usage records as CSV rows, a header first.
func recordsCSV(l *mgmtv1alpha1.UsageRecordList) [][]string {
	rows := make([][]string, 0, 1+len(l.Items))
	rows = append(rows, mgmtv1alpha1.UsageRecordCSVHeader)
	for i := range l.Items {
		rows = append(rows, l.Items[i].CSVRow())
	}
	return rows
}

// The header row of reports: snake_case, as in the usage server's CSV.
const (
	reportColumns = "start_time,end_time,project,key_id,service,model,endpoint,member,calls,input_tokens," +
		"cached_input_tokens,output_tokens,video_seconds,storage_byte_hours,cost,currency,unpriced_calls"
)

func csvTime(t metav1.Time) string { return t.UTC().Format(time.RFC3339) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
