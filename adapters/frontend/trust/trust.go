// Package trust is the one place that decides which client-supplied
// credentials the server honours, and when its own secrets win
// (docs/security.md, "Precedence"). The server's stream and /poke/send
// handlers ask it; neither decides for itself. (The standalone gateway
// forwards no client credential at all.)
//
// It imports only the standard library.
package trust

// Policy answers "may this client-supplied credential be used?". Build it
// from configuration with New; the zero value trusts clients only where the
// server has no secret of its own.
type Policy struct {
	trustClient bool
}

// New returns the policy for FORESIGHT_TRUST_CLIENT_CREDENTIALS.
func New(trustClientCredentials bool) Policy { return Policy{trustClient: trustClientCredentials} }

// HonourClient reports whether a client may supply a credential (and the
// settings that go with it, such as which model to call) when the server
// holds one of its own or not. Without a server secret the client's is used,
// as in the original; with one, only when clients are trusted explicitly,
// so a stranger cannot make the server spend another account.
func (p Policy) HonourClient(serverHolds bool) bool { return !serverHolds || p.trustClient }

// Pick returns the credential to use: the client's when it is honoured and
// not empty, else the server's (which may be empty too: none configured).
func (p Policy) Pick(server, client string) string {
	if client != "" && p.HonourClient(server != "") {
		return client
	}
	return server
}
