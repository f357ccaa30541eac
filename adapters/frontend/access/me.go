package access

import (
	"encoding/json"
	"net/http"

	"github.com/foresight-vision/foresight/ports"
)

// meJSON is GET /me: who the presented credential is, never its secret.
type meJSON struct {
	Role    ports.Role `json:"role"`
	Via     string     `json:"via"`
	TokenID *string    `json:"token_id"`
	// Devices is null for admin (every device).
	Devices []string `json:"devices"`
}

// MeHandler answers GET /me with the request's principal: role, how it
// presented itself, the token id and the devices it may see.
func MeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromContext(r.Context())
		if !ok {
			p = Principal{Role: ports.RoleAdmin, Via: ViaOpen}
		}
		body := meJSON{Role: p.Role, Via: p.Via, Devices: p.Devices}
		if p.TokenID != "" {
			body.TokenID = &p.TokenID
		}
		if !p.IsAdmin() && body.Devices == nil {
			body.Devices = []string{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(body)
	})
}
