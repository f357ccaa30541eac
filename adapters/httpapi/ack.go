package httpapi

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/foresight-vision/foresight/domain"
)

// AppendAck appends the JSON form of ack to dst: {"frame":n,"bytes":b}
// followed by the result's non-null fields in key order. The frame and
// bytes fields always come from the server, never from a model reply. The
// common case, an ack without a result, allocates nothing.
func AppendAck(dst []byte, ack domain.Ack) []byte {
	dst = append(dst, `{"frame":`...)
	dst = strconv.AppendInt(dst, ack.Frame, 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, int64(ack.Bytes), 10)
	if len(ack.Result) > 0 {
		keys := make([]string, 0, len(ack.Result))
		for k, v := range ack.Result {
			if v != nil && k != "frame" && k != "bytes" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			value, err := json.Marshal(ack.Result[k])
			if err != nil {
				continue // a field we cannot encode is left out rather than breaking the ack
			}
			name, _ := json.Marshal(k)
			dst = append(dst, ',')
			dst = append(dst, name...)
			dst = append(dst, ':')
			dst = append(dst, value...)
		}
	}
	return append(dst, '}')
}
