package httpapi

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/foresight-vision/foresight/domain"
)

// InferenceErrorField is the ack field that carries a failed call's error
// text (domain.Ack.InferenceError), as the original server named it.
const InferenceErrorField = "inference_error"

// CameraField is the ack field that carries a change of camera state seen by
// the scene gate (domain.Ack.Camera): "dark", "blurred" or "ok".
const CameraField = "camera"

// AppendAck appends the JSON form of ack to dst: {"frame":n,"bytes":b}
// followed, in key order, by the result's non-null fields or by
// "inference_error", with "camera" among them when the camera state changed.
// The frame and bytes fields always come from the server, never from a model
// reply, and so do inference_error when a call failed and camera when set.
// The common case, an ack without a result, allocates nothing.
func AppendAck(dst []byte, ack domain.Ack) []byte {
	dst = append(dst, `{"frame":`...)
	dst = strconv.AppendInt(dst, ack.Frame, 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, int64(ack.Bytes), 10)
	if len(ack.Result) == 0 && ack.InferenceError == "" && ack.Camera == "" {
		return append(dst, '}')
	}
	keys := make([]string, 0, len(ack.Result)+2)
	for k, v := range ack.Result {
		if v != nil && k != "frame" && k != "bytes" && (k != InferenceErrorField || ack.InferenceError == "") &&
			(k != CameraField || ack.Camera == "") {
			keys = append(keys, k)
		}
	}
	if ack.InferenceError != "" {
		keys = append(keys, InferenceErrorField)
	}
	if ack.Camera != "" {
		keys = append(keys, CameraField)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var v any
		switch {
		case k == InferenceErrorField && ack.InferenceError != "":
			v = ack.InferenceError
		case k == CameraField && ack.Camera != "":
			v = ack.Camera
		default:
			v = ack.Result[k]
		}
		value, err := json.Marshal(v)
		if err != nil {
			continue // a field we cannot encode is left out rather than breaking the ack
		}
		name, _ := json.Marshal(k)
		dst = append(dst, ',')
		dst = append(dst, name...)
		dst = append(dst, ':')
		dst = append(dst, value...)
	}
	return append(dst, '}')
}
