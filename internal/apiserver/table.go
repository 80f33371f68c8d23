package apiserver

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// The types and formats of table columns (OpenAPI's), and the columns the
// management API's tables share.
const (
	text     = "string"
	count    = "integer"
	dateTime = "date-time"
)

// nameHeader heads the column of object names, whose OpenAPI format is
// nameFormat.
const (
	nameHeader = "Name"
	nameFormat = "name"
)

var (
	// timeColumn is when a record, event or alert happened; wideNameColumn
	// its name (an ID), shown with -o wide.
	timeColumn     = metav1.TableColumnDefinition{Name: "Time", Type: text, Format: dateTime}
	wideNameColumn = metav1.TableColumnDefinition{Name: nameHeader, Type: text, Format: nameFormat, Priority: 1}

	inputTokensColumn  = metav1.TableColumnDefinition{Name: "Input Tokens", Type: count}
	outputTokensColumn = metav1.TableColumnDefinition{Name: "Output Tokens", Type: count}
)
