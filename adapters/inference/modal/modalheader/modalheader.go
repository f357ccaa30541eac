// Package modalheader names the request headers through which a client (or a
// gateway in front) may choose its own Modal credentials and model for one
// stream, and turns them into the Modal backend's per-stream options.
//
// It imports only the standard library, so the gateway and the clients that
// set these headers need not pull in the Modal SDK.
package modalheader

import (
	"net/http"
	"strings"
)

// Request headers the Modal backend honours, when the trust policy lets it.
const (
	TokenID     = "X-Modal-Token-Id"
	TokenSecret = "X-Modal-Token-Secret"
	AppName     = "X-Modal-App-Name"
	ClassName   = "X-Modal-Class-Name"
)

// Keys of the per-stream options (ports.SessionRequest.Options) the Modal
// backend reads.
const (
	OptionTokenID     = "token-id"
	OptionTokenSecret = "token-secret"
	OptionAppName     = "app-name"
	OptionClassName   = "class-name"
)

// Headers lists every header above with the option it sets.
var Headers = []struct{ Header, Option string }{
	{TokenID, OptionTokenID},
	{TokenSecret, OptionTokenSecret},
	{AppName, OptionAppName},
	{ClassName, OptionClassName},
}

// SessionOptions reads the headers above into per-stream options, trimmed;
// empty values are left out. It returns nil when none is set. Whether the
// client may choose them at all is the caller's trust policy.
func SessionOptions(h http.Header) map[string]string {
	var out map[string]string
	for _, hd := range Headers {
		if v := strings.TrimSpace(h.Get(hd.Header)); v != "" {
			if out == nil {
				out = make(map[string]string, len(Headers))
			}
			out[hd.Option] = v
		}
	}
	return out
}
