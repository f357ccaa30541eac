package httpapi

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// The fixed start of every ack, spelled out once so the common ack is a few
// appends.
const (
	ackFramePrefix = `{"` + wire.AckFrame + `":`
	ackBytesPrefix = `,"` + wire.AckBytes + `":`
)

// ackField is one field of an ack after frame and bytes.
type ackField struct {
	name  string
	value any
}

// AppendAck appends the JSON form of ack to dst: {"frame":n,"bytes":b}
// followed, in key order, by the result's fields (its typed fields that are
// set, then its non-null extras) or by the inference error, with the camera
// state among them when it changed (wire names each). The frame and bytes fields
// always come from the server, never from a model reply, and so do
// inference_error when a call failed and camera when set; a typed result
// field wins over an extra of the same name. The common case, an ack
// without a result, allocates nothing.
func AppendAck(dst []byte, ack domain.Ack) []byte {
	dst = append(dst, ackFramePrefix...)
	dst = strconv.AppendInt(dst, ack.Frame, 10)
	dst = append(dst, ackBytesPrefix...)
	dst = strconv.AppendInt(dst, int64(ack.Bytes), 10)
	if ack.Result.Empty() && ack.InferenceError == "" && ack.Camera == "" {
		return append(dst, '}')
	}
	fields := ackFields(ack)
	for _, f := range fields {
		value, err := json.Marshal(f.value)
		if err != nil {
			continue // a field we cannot encode is left out rather than breaking the ack
		}
		name, _ := json.Marshal(f.name)
		dst = append(dst, ',')
		dst = append(dst, name...)
		dst = append(dst, ':')
		dst = append(dst, value...)
	}
	return append(dst, '}')
}

// ackFields lists the fields of ack after frame and bytes, in key order.
func ackFields(ack domain.Ack) []ackField {
	res := ack.Result
	fields := make([]ackField, 0, 7+len(res.Extras))
	typed := func(set ports.ResultFields, name string, value any) {
		if res.Set.Has(set) {
			fields = append(fields, ackField{name, value})
		}
	}
	typed(ports.ResultCaption, wire.AckCaption, res.Caption)
	typed(ports.ResultChunkStart, wire.AckChunkStartS, res.ChunkStartS)
	typed(ports.ResultChunkEnd, wire.AckChunkEndS, res.ChunkEndS)
	typed(ports.ResultLatency, wire.AckLatencyMS, res.LatencyMS)
	typed(ports.ResultTokens, wire.AckTokensGenerated, res.TokensGenerated)
	for name, value := range res.Extras {
		if value != nil && !serverField(name, ack) && !typedFieldSet(name, res.Set) {
			fields = append(fields, ackField{name, value})
		}
	}
	if ack.InferenceError != "" {
		fields = append(fields, ackField{wire.AckInferenceError, ack.InferenceError})
	}
	if ack.Camera != "" {
		fields = append(fields, ackField{wire.AckCamera, ack.Camera})
	}
	slices.SortFunc(fields, func(a, b ackField) int { return cmp.Compare(a.name, b.name) })
	return fields
}

// serverField reports whether the server writes the field name on ack
// itself, so that no model extra may.
func serverField(name string, ack domain.Ack) bool {
	switch name {
	case wire.AckFrame, wire.AckBytes:
		return true
	case wire.AckInferenceError:
		return ack.InferenceError != ""
	case wire.AckCamera:
		return ack.Camera != ""
	}
	return false
}

// typedFieldSet reports whether name is one of the result's typed fields
// and set.
func typedFieldSet(name string, set ports.ResultFields) bool {
	switch name {
	case wire.AckCaption:
		return set.Has(ports.ResultCaption)
	case wire.AckChunkStartS:
		return set.Has(ports.ResultChunkStart)
	case wire.AckChunkEndS:
		return set.Has(ports.ResultChunkEnd)
	case wire.AckLatencyMS:
		return set.Has(ports.ResultLatency)
	case wire.AckTokensGenerated:
		return set.Has(ports.ResultTokens)
	}
	return false
}
