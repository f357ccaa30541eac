package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/domain"
)

// Per-wearer scoping (adapters/frontend/access): the gate puts the request's
// principal in its context and the handlers here keep to its devices. A
// request with no principal (a handler mounted without the gate) is served
// as before tokens existed.

// CredentialLimiter bounds calls per credential (*access.Limiter).
type CredentialLimiter interface {
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// streamDevice is the device a stream runs as: the device= query parameter,
// else the x-foresight-device header, else, for a token of a single device,
// that device (for admin, domain.DefaultDevice). status is 0 when allowed,
// else the answer to give before the upgrade.
func streamDevice(r *http.Request) (device string, status int, detail string) {
	query := r.URL.Query()
	var raw string
	if query.Has(wire.QueryDevice) {
		raw = query.Get(wire.QueryDevice)
	} else if values, ok := r.Header[http.CanonicalHeaderKey(wire.HeaderDevice)]; ok && len(values) > 0 {
		raw = values[0]
	}
	if raw == "" && (query.Has(wire.QueryDevice) || len(r.Header.Values(wire.HeaderDevice)) > 0) {
		// Taken as the default device it would file a misconfigured
		// client's captions under someone else's; /captions?device=
		// refuses it too.
		return "", http.StatusBadRequest, "invalid device: " + errEmptyDevice.Error()
	}
	p, scoped := access.FromContext(r.Context())
	scoped = scoped && !p.IsAdmin()
	if scoped && raw == "" {
		if len(p.Devices) == 1 {
			return p.Devices[0], 0, ""
		}
		return "", http.StatusBadRequest, fmt.Sprintf("this token acts for several devices (%s): name one with ?%s=",
			strings.Join(p.Devices, ", "), wire.QueryDevice)
	}
	device, err := domain.DeviceID(raw)
	if err != nil {
		return "", http.StatusBadRequest, fmt.Sprintf("invalid device: %v", err)
	}
	if scoped && !p.MaySee(device) {
		return "", http.StatusForbidden, fmt.Sprintf("this token may not stream as device %q", device)
	}
	return device, 0, ""
}

// scopeList applies the principal's scope to a list: the device set it must
// keep to (nil: every device), or false after answering 403 when device
// (the list's own filter, "" for none) is outside it.
func scopeList(w http.ResponseWriter, r *http.Request, device string) (devices []string, ok bool) {
	p, scoped := access.FromContext(r.Context())
	if !scoped {
		return nil, true
	}
	if device != "" && !p.MaySee(device) {
		writeDetail(w, http.StatusForbidden, fmt.Sprintf("this token may not read device %q", device))
		return nil, false
	}
	return p.DevicesFilter(), true
}

// allowDevice answers 403 and returns false when the principal may not act
// for device.
func allowDevice(w http.ResponseWriter, r *http.Request, device string) bool {
	if p, scoped := access.FromContext(r.Context()); scoped && !p.MaySee(device) {
		writeDetail(w, http.StatusForbidden, fmt.Sprintf("this token may not act for device %q", device))
		return false
	}
	return true
}

// allowCall takes one call from the credential's share of limiter, or
// answers 429 with Retry-After and returns false.
func allowCall(w http.ResponseWriter, r *http.Request, limiter CredentialLimiter, what string) bool {
	if limiter == nil {
		return true
	}
	p, ok := access.FromContext(r.Context())
	if !ok {
		return true
	}
	allowed, wait := limiter.Allow(p.LimitKey())
	if allowed {
		return true
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeDetail(w, http.StatusTooManyRequests, fmt.Sprintf("too many %s for this credential: try again in %d s", what, secs))
	return false
}
