package access

import (
	"context"
	"slices"

	"github.com/foresight-vision/foresight/ports"
)

// How a principal presented itself (Principal.Via).
const (
	ViaToken     = "token"
	ViaMagicWord = "magic_word"
	// ViaOpen: no gate is configured (no magic word, tokens not required)
	// and no token was presented; the server is as open as before tokens.
	ViaOpen = "open"
)

// Principal is who a request acts as.
type Principal struct {
	// TokenID is the token's public id; empty for the magic word and ViaOpen.
	TokenID string
	Role    ports.Role
	// Devices are a device token's devices; nil for admin.
	Devices []string
	Via     string
}

// IsAdmin reports whether p may act for every device.
func (p Principal) IsAdmin() bool { return p.Role == ports.RoleAdmin }

// MaySee reports whether p may read or act for device.
func (p Principal) MaySee(device string) bool {
	return p.IsAdmin() || slices.Contains(p.Devices, device)
}

// DevicesFilter is the device set a list must keep to: nil (no filter) for
// admin, else p's devices (never nil, so an empty set matches nothing).
func (p Principal) DevicesFilter() []string {
	if p.IsAdmin() {
		return nil
	}
	if p.Devices == nil {
		return []string{}
	}
	return slices.Clone(p.Devices)
}

// LimitKey names p's credential for per-credential limits: the token id, or
// the magic word / open server as one shared credential.
func (p Principal) LimitKey() string {
	if p.TokenID != "" {
		return p.TokenID
	}
	return p.Via
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the gate put in ctx. ok is false when no
// gate ran (a handler mounted without one serves as it did before tokens).
func FromContext(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}
