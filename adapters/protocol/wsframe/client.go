package wsframe

import (
	"github.com/gobwas/ws"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

// AppendFrame appends one unfragmented frame, header and payload, to dst,
// so a caller can send it with a single Write that never interleaves with
// another frame. A masked frame (every client frame) gets a fresh random
// mask; payload itself is never modified.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte, masked bool) []byte {
	hdr := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	if masked {
		hdr.Masked, hdr.Mask = true, ws.NewMask()
	}
	dst = appendHeader(dst, hdr)
	start := len(dst)
	dst = append(dst, payload...)
	if masked {
		ws.Cipher(dst[start:], hdr.Mask, 0)
	}
	return dst
}

// appendHeader encodes hdr as RFC 6455 section 5.2 lays it out.
func appendHeader(dst []byte, hdr ws.Header) []byte {
	b0 := byte(hdr.OpCode) | hdr.Rsv<<4
	if hdr.Fin {
		b0 |= 0x80
	}
	var maskBit byte
	if hdr.Masked {
		maskBit = 0x80
	}
	n := hdr.Length
	switch {
	case n < 126:
		dst = append(dst, b0, maskBit|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, maskBit|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, maskBit|127,
			byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if hdr.Masked {
		dst = append(dst, hdr.Mask[:]...)
	}
	return dst
}

// CheckServerHeader returns the close code and reason for a server frame
// header a client must refuse (reserved bits or opcode, a bad control
// frame), or 0. Masked server frames are tolerated and unmasked.
func CheckServerHeader(hdr ws.Header) (wire.CloseCode, string) { return checkHeader(hdr) }
