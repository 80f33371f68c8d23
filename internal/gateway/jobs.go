package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/minimax/platform-hub/internal/pricing"
	"github.com/minimax/platform-hub/internal/usage"
)

// fineTuningJob is what metering reads of an OpenAI fine-tuning job.
type fineTuningJob struct {
	ID     string `json:"id"`
	Model  string `json:"model"`
	Status string `json:"status"`
	// TrainedTokens is set once the job has succeeded.
	TrainedTokens json.RawMessage `json:"trained_tokens"`
	// FinishedAt is when it ended, in Unix seconds.
	FinishedAt *int64 `json:"finished_at"`
}

// meterJobs records the training of each succeeded fine-tuning job an
// answer shows (one job, or a list's data), as one fine_tuning call with the
// trained tokens as input, at the time the job finished. The event's ID is
// derived from the job's, so a job is metered once however often, and by
// however many replicas, it is read: the usage store keeps each ID once.
func (g *Gateway) meterJobs(c *call, body []byte) {
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	items := []json.RawMessage{body}
	if json.Unmarshal(body, &page) == nil && page.Data != nil {
		items = page.Data
	}
	for _, raw := range items {
		var job fineTuningJob
		if json.Unmarshal(raw, &job) != nil || job.ID == "" || job.Status != "succeeded" {
			continue
		}
		if e, ok := jobEvent(c, &job); ok {
			g.recordEvent(e)
		}
	}
}

// jobEvent is the usage event of a succeeded job's training, unless it
// trained nothing.
func jobEvent(c *call, job *fineTuningJob) (usage.Event, bool) {
	tokens, valid := figure(job.TrainedTokens)
	if job.TrainedTokens != nil && tokens == 0 && valid {
		return usage.Event{}, false
	}
	e := usage.Event{ID: jobEventID(job.ID), Time: c.started.UTC(), Project: c.key.Namespace, KeyID: c.keyID,
		Service: pricing.FineTuning, Endpoint: "/v1/fine_tuning/jobs/{fine_tuning_job_id}", Model: job.Model,
		InputTokens: tokens, StatusCode: 200}
	if at := job.FinishedAt; at != nil {
		if t := time.Unix(*at, 0).UTC(); !t.Before(usage.MinEventTime) && t.Before(usage.MaxEventTime) {
			e.Time = t
		}
	}
	switch {
	case job.TrainedTokens == nil:
		e.Flags = append(e.Flags, usage.FlagUsageMissing)
	case !valid:
		e.Flags = append(e.Flags, usage.FlagUsageMalformed)
	}
	if usage.TextProblem(e.Model, usage.MaxNameLength, false) != "" || holdsHubKey(e.Model) {
		e.Model, e.Flags = "", append(e.Flags, usage.FlagModelInvalid)
	}
	return e, true
}

// jobEventID is the ID of the usage event of a job's training: the same for
// every read of the job.
func jobEventID(jobID string) string {
	sum := sha256.Sum256([]byte("fine_tuning_job\x00" + jobID))
	return "ftjob-" + hex.EncodeToString(sum[:24])
}
