// Package demomodel is a small, deterministic, OpenAI-compatible model server
// for `hub dev` and the tests: the demo works offline, and usage figures are
// predictable. It is not a language model: it answers with a fixed text
// derived from the prompt and counts "tokens" as whitespace-separated words.
package demomodel

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Handler serves the OpenAI-compatible endpoints the gateway meters:
//
//	GET  /v1/models
//	POST /v1/chat/completions   (JSON, or server-sent events with "stream": true)
//	POST /v1/embeddings
//	POST /v1/video_generation
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", models)
	mux.HandleFunc("POST /v1/chat/completions", chat)
	mux.HandleFunc("POST /v1/embeddings", embeddings)
	mux.HandleFunc("POST /v1/video_generation", video)
	return mux
}

// Usage is the OpenAI usage object.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// Words counts the "tokens" of a text the way the demo model does.
func Words(s string) int64 { return int64(len(strings.Fields(s))) }

// Reply is the demo model's answer to a prompt.
func Reply(prompt string) string {
	return fmt.Sprintf("This is the Platform Hub demo model. You said %d words.", Words(prompt))
}

// The response shapes of the OpenAI API, as far as the demo fills them.
type (
	modelList struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}
	model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		OwnedBy string `json:"owned_by"`
	}
	message struct {
		Role    string `json:"role,omitempty"`
		Content string `json:"content,omitempty"`
	}
	choice struct {
		Index        int      `json:"index"`
		Message      *message `json:"message,omitempty"`
		Delta        *message `json:"delta,omitempty"`
		FinishReason string   `json:"finish_reason,omitempty"`
	}
	completion struct {
		ID      string   `json:"id"`
		Object  string   `json:"object"`
		Model   string   `json:"model"`
		Choices []choice `json:"choices"`
		Usage   *Usage   `json:"usage,omitempty"`
	}
	embedding struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	embeddingList struct {
		Object string      `json:"object"`
		Model  string      `json:"model"`
		Data   []embedding `json:"data"`
		Usage  Usage       `json:"usage"`
	}
	videoTask struct {
		TaskID   string `json:"task_id"`
		Model    string `json:"model"`
		Duration int64  `json:"duration"`
	}
)

func models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, modelList{Object: "list", Data: []model{
		{ID: "MiniMax-M2", Object: "model", OwnedBy: "demo"},
		{ID: "MiniMax-Hailuo-02", Object: "model", OwnedBy: "demo"},
	}})
}

func chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"messages are required","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	prompt := ""
	for _, m := range req.Messages {
		prompt += " " + m.Content
	}
	reply := Reply(prompt)
	usage := Usage{PromptTokens: Words(prompt), CompletionTokens: Words(reply)}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	c := completion{ID: fmt.Sprintf("chatcmpl-demo-%d", time.Now().UnixNano()), Object: "chat.completion", Model: req.Model}
	if !req.Stream {
		c.Choices = []choice{{Message: &message{Role: "assistant", Content: reply}, FinishReason: "stop"}}
		c.Usage = &usage
		writeJSON(w, c)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	c.Object = "chat.completion.chunk"
	send := func(choices []choice, usage *Usage) {
		c.Choices, c.Usage = choices, usage
		raw, _ := json.Marshal(c)
		_, _ = fmt.Fprintf(w, "data: %s\n\n", raw)
		if flusher != nil {
			flusher.Flush()
		}
	}
	for _, word := range strings.Fields(reply) {
		send([]choice{{Delta: &message{Content: word + " "}}}, nil)
	}
	send([]choice{{Delta: &message{}, FinishReason: "stop"}}, nil)
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		send([]choice{}, &usage)
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
}

func embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"input must be a list of strings","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	out := embeddingList{Object: "list", Model: req.Model, Data: make([]embedding, len(req.Input))}
	for i, in := range req.Input {
		out.Usage.PromptTokens += Words(in)
		out.Data[i] = embedding{Object: "embedding", Index: i, Embedding: []float64{float64(Words(in)), 0.5, -0.5}}
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	writeJSON(w, out)
}

func video(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Prompt   string `json:"prompt"`
		Duration int64  `json:"duration"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	if req.Duration == 0 {
		req.Duration = 6
	}
	writeJSON(w, videoTask{TaskID: fmt.Sprintf("video-demo-%d", time.Now().UnixNano()), Model: req.Model, Duration: req.Duration})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
