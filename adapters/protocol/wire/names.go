package wire

// Paths the server serves.
const (
	PathHealth = "/health"
	PathStream = "/vision/stream"
	PathPoke   = "/poke/send"
)

// HeaderPokeAPIKey carries a client's (or the gateway's) Poke API key.
const HeaderPokeAPIKey = "X-Poke-Api-Key"

// The magic word, sent as a header or a query parameter; the header wins.
const (
	HeaderMagicWord = "x-magic-word"
	QueryMagicWord  = "magic_word"
)

// The device a stream belongs to (its wearer), sent on the WebSocket
// upgrade as a query parameter or a header; the query parameter wins.
const (
	HeaderDevice = "x-foresight-device"
	QueryDevice  = "device"
)
