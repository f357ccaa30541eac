package modal

import (
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/ports"
)

// toResult turns the SDK's decoded CBOR reply into a ports.Result: it must be
// a map; top-level null fields are dropped (they would add nothing to an ack)
// and every value is made encodable by encoding/json. The fields the remote
// apps return under the ack's names become the typed fields when their
// values fit them without changing their JSON form; everything else,
// misfits included, stays in Extras as it came.
func toResult(v any) (ports.Result, error) {
	fields := map[string]any{}
	add := func(k any, val any) {
		if val = jsonValue(val); val != nil {
			fields[keyString(k)] = val
		}
	}
	switch m := v.(type) {
	case map[any]any:
		for k, val := range m {
			add(k, val)
		}
	case map[string]any:
		for k, val := range m {
			add(k, val)
		}
	default:
		return ports.Result{}, fmt.Errorf("reply is %T, want a dict", v)
	}
	var res ports.Result
	take := func(name string, set ports.ResultFields, fit func(any) bool) {
		if val, ok := fields[name]; ok && fit(val) {
			res.Set |= set
			delete(fields, name)
		}
	}
	take(wire.AckCaption, ports.ResultCaption, func(v any) (ok bool) { res.Caption, ok = v.(string); return ok })
	take(wire.AckChunkStartS, ports.ResultChunkStart, func(v any) (ok bool) { res.ChunkStartS, ok = asFloat(v); return ok })
	take(wire.AckChunkEndS, ports.ResultChunkEnd, func(v any) (ok bool) { res.ChunkEndS, ok = asFloat(v); return ok })
	take(wire.AckLatencyMS, ports.ResultLatency, func(v any) (ok bool) { res.LatencyMS, ok = asFloat(v); return ok })
	take(wire.AckTokensGenerated, ports.ResultTokens, func(v any) (ok bool) { res.TokensGenerated, ok = asInt(v); return ok })
	if len(fields) > 0 {
		res.Extras = fields
	}
	return res, nil
}

// maxExactInt is the largest integer a float64 and an int64 both hold with
// the same JSON form (2^53).
const maxExactInt = 1 << 53

// asFloat reads a decoded number as a float64 whose JSON form is the
// number's own: any float, or an integer within ±2^53.
func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		if n >= -maxExactInt && n <= maxExactInt {
			return float64(n), true
		}
	}
	return 0, false
}

// asInt reads a decoded number as an int64 whose JSON form is the number's
// own: any integer, or a whole float within ±2^53 (but not -0).
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		if n == math.Trunc(n) && n >= -maxExactInt && n <= maxExactInt && !(n == 0 && math.Signbit(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

// jsonValue converts a decoded CBOR value to one encoding/json can marshal:
// maps get string keys, unsigned and big integers become int64 when they fit
// (float64 otherwise), NaN and infinities become null, byte strings become
// text when they are valid UTF-8 (else they stay bytes, marshalled as base64),
// and unknown tags are replaced by their content.
func jsonValue(v any) any {
	switch x := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[keyString(k)] = jsonValue(val)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = jsonValue(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = jsonValue(val)
		}
		return out
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return float64(x)
	case float32:
		return jsonValue(float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case big.Int:
		if x.IsInt64() {
			return x.Int64()
		}
		f, _ := new(big.Float).SetInt(&x).Float64()
		return f
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return x
	case cbor.Tag:
		return jsonValue(x.Content)
	case cbor.SimpleValue:
		return nil
	default:
		return v
	}
}

// keyString renders a map key as JSON wants it.
func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(jsonValue(k))
	}
}
