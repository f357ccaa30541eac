package wire

// Access tokens (docs/security.md): sent as "Authorization: Bearer <token>"
// on every route, or on the WebSocket upgrade also as the access_token query
// parameter (browsers cannot set headers there).
const (
	HeaderAuthorization = "Authorization"
	QueryAccessToken    = "access_token"
	// PathMe answers which role and devices the presented credential has.
	PathMe = "/me"
)
