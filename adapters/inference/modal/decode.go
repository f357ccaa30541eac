package modal

import (
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/foresight-vision/foresight/ports"
)

// toResult turns the SDK's decoded CBOR reply into a ports.Result: it must be
// a map; top-level null fields are dropped (they would add nothing to an ack)
// and every value is made encodable by encoding/json.
func toResult(v any) (ports.Result, error) {
	res := ports.Result{}
	add := func(k any, val any) {
		if val = jsonValue(val); val != nil {
			res[keyString(k)] = val
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
		return nil, fmt.Errorf("reply is %T, want a dict", v)
	}
	return res, nil
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
