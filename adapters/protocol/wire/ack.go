package wire

// The fields of an ack, the JSON text message that answers each frame on
// /vision/stream. Frame and bytes come first and are always there; the
// others follow in key order when present. A model's reply to a chunk uses
// the same names (a Modal app returns them in its dict), and a backend's
// own extra fields are merged in beside them.
const (
	// AckFrame is the 1-based number of the frame acknowledged.
	AckFrame = "frame"
	// AckBytes is that frame's length as the server received it.
	AckBytes = "bytes"
	// AckCaption is the model's caption of a chunk.
	AckCaption = "caption"
	// AckChunkStartS and AckChunkEndS bound the chunk the caption
	// describes, in seconds since the stream began.
	AckChunkStartS = "chunk_start_s"
	AckChunkEndS   = "chunk_end_s"
	// AckLatencyMS is the model call's latency in milliseconds.
	AckLatencyMS = "latency_ms"
	// AckTokensGenerated is how many tokens the model produced.
	AckTokensGenerated = "tokens_generated"
	// AckInferenceError is a failed call's error text, as the original
	// server named it.
	AckInferenceError = "inference_error"
	// AckCamera is a change of camera state seen by the scene gate:
	// "dark", "blurred" or "ok".
	AckCamera = "camera"
)

// CaptionFields are a caption's model fields under the ack's names, in the
// order GET /captions lists them (it embeds this struct).
type CaptionFields struct {
	ChunkStartS     float64 `json:"chunk_start_s"`
	ChunkEndS       float64 `json:"chunk_end_s"`
	Caption         string  `json:"caption"`
	LatencyMS       float64 `json:"latency_ms"`
	TokensGenerated int64   `json:"tokens_generated"`
}
