package apiserver

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// The types and formats of table columns (OpenAPI's), and the columns the
// management API's tables share.
const (
	text     = "string"
	count    = "integer"
	dateTime = "date-time"
)

var (
	inputTokensColumn  = metav1.TableColumnDefinition{Name: "Input Tokens", Type: count}
	outputTokensColumn = metav1.TableColumnDefinition{Name: "Output Tokens", Type: count}
)
