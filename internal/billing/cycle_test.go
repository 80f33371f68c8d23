package billing

import (
	"testing"
	"time"
)

func TestCycleAt(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	newYork, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		now       time.Time
		day       int
		loc       *time.Location
		wantStart time.Time
		wantEnd   time.Time
	}{
		{
			name:      "middle of a month, cycles on the 1st",
			now:       time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
			day:       1,
			loc:       time.UTC,
			wantStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
			wantEnd:   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name:      "exactly at the start belongs to the new cycle",
			now:       time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC),
			day:       15,
			loc:       time.UTC,
			wantStart: time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC),
			wantEnd:   time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC),
		},
		{
			name:      "one nanosecond before the start belongs to the old cycle, across a year",
			now:       time.Date(2027, 1, 14, 23, 59, 59, 999999999, time.UTC),
			day:       15,
			loc:       time.UTC,
			wantStart: time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC),
			wantEnd:   time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC),
		},
		{
			name: "the cycle follows the organization's time zone, not UTC",
			// 2026-11-30T17:00Z is already 01:00 on 1 December in Shanghai.
			now:       time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC),
			day:       1,
			loc:       shanghai,
			wantStart: time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai),
			wantEnd:   time.Date(2027, 1, 1, 0, 0, 0, 0, shanghai),
		},
		{
			name:      "day 28 in February",
			now:       time.Date(2027, 2, 27, 12, 0, 0, 0, time.UTC),
			day:       28,
			loc:       time.UTC,
			wantStart: time.Date(2027, 1, 28, 0, 0, 0, 0, time.UTC),
			wantEnd:   time.Date(2027, 2, 28, 0, 0, 0, 0, time.UTC),
		},
		{
			name:      "a cycle that spans a daylight saving change keeps local midnight",
			now:       time.Date(2026, 11, 10, 12, 0, 0, 0, newYork),
			day:       1,
			loc:       newYork,
			wantStart: time.Date(2026, 11, 1, 0, 0, 0, 0, newYork),
			wantEnd:   time.Date(2026, 12, 1, 0, 0, 0, 0, newYork),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CycleAt(tt.now, tt.day, tt.loc)
			if !got.Start.Equal(tt.wantStart) || !got.End.Equal(tt.wantEnd) {
				t.Errorf("CycleAt(%s, %d, %s) = [%s, %s), want [%s, %s)", tt.now, tt.day, tt.loc,
					got.Start, got.End, tt.wantStart, tt.wantEnd)
			}
			if !got.Contains(tt.now) {
				t.Errorf("cycle [%s, %s) does not contain %s", got.Start, got.End, tt.now)
			}
			if got.Contains(got.End) {
				t.Errorf("cycle contains its own end %s", got.End)
			}
		})
	}
}
