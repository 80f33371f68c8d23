package server

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/minimax/platform-hub/internal/objects"
)

// Paths of the upstream object registry: which project owns each object
// made upstream through the gateway (files, fine-tuning jobs, video tasks,
// responses).
const (
	// ObjectsPath takes claims: POST {"objects": [{"kind", "id", "project"}]}.
	ObjectsPath = "/v1/objects"
	// ObjectOwnersPath answers owners: POST {"kind", "ids": [...]}.
	ObjectOwnersPath = "/v1/objects/owners"
)

// Limits of one object request.
const (
	MaxObjectsPerRequest = 1000
	maxObjectBody        = 1 << 20
)

// ClaimRequest is the body of a claim.
type ClaimRequest struct {
	Objects []objects.Object `json:"objects"`
}

// ClaimResponse is the body of a successful claim.
type ClaimResponse struct {
	// Claimed is how many objects the request named; each is now its
	// project's (or was already).
	Claimed int `json:"claimed"`
}

// OwnersRequest asks who owns objects of one kind.
type OwnersRequest struct {
	Kind string   `json:"kind"`
	IDs  []string `json:"ids"`
}

// OwnersResponse maps each recorded object ID to its project; IDs that are
// not recorded are absent.
type OwnersResponse struct {
	Owners map[string]string `json:"owners"`
}

// claimObjects records objects as their projects'. A claim of an object
// another project owns is refused whole with 409, naming the owner; upstream
// IDs are unique, so that means a bug or a forgery, never a race.
func (s *Server) claimObjects(w http.ResponseWriter, r *http.Request) {
	var req ClaimRequest
	if !decodeObjectRequest(w, r, &req) {
		return
	}
	if len(req.Objects) > MaxObjectsPerRequest {
		writeError(w, http.StatusRequestEntityTooLarge, errorBody{Message: fmt.Sprintf("send at most %d objects per request", MaxObjectsPerRequest)})
		return
	}
	for i := range req.Objects {
		if field, msg := req.Objects[i].Validate(); field != "" {
			writeError(w, http.StatusUnprocessableEntity, errorBody{Message: msg, Index: &i, Field: fmt.Sprintf("objects[%d].%s", i, field)})
			return
		}
	}
	conflicts, err := s.Objects.ClaimObjects(r.Context(), req.Objects)
	if err != nil {
		s.Log.Error(err, "Claiming upstream objects", "objects", len(req.Objects))
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: "the object registry is unavailable; retry"})
		return
	}
	if len(conflicts) > 0 {
		c := conflicts[0]
		writeError(w, http.StatusConflict, errorBody{Message: fmt.Sprintf("%s %s belongs to project %q (%d conflicting objects)",
			c.Kind, c.ID, c.Project, len(conflicts))})
		return
	}
	writeJSON(w, http.StatusOK, ClaimResponse{Claimed: len(req.Objects)})
}

// objectOwners answers who owns objects.
func (s *Server) objectOwners(w http.ResponseWriter, r *http.Request) {
	var req OwnersRequest
	if !decodeObjectRequest(w, r, &req) {
		return
	}
	if req.Kind == "" || len(req.IDs) > MaxObjectsPerRequest {
		writeError(w, http.StatusUnprocessableEntity, errorBody{Message: fmt.Sprintf(
			"name a kind, and at most %d ids", MaxObjectsPerRequest)})
		return
	}
	owners, err := s.Objects.ObjectOwners(r.Context(), req.Kind, req.IDs)
	if err != nil {
		s.Log.Error(err, "Reading object owners")
		writeError(w, http.StatusServiceUnavailable, errorBody{Message: "the object registry is unavailable; retry"})
		return
	}
	writeJSON(w, http.StatusOK, OwnersResponse{Owners: owners})
}

func decodeObjectRequest(w http.ResponseWriter, r *http.Request, into any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxObjectBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		writeError(w, http.StatusBadRequest, errorBody{Message: "the body is not valid: " + err.Error()})
		return false
	}
	return true
}
