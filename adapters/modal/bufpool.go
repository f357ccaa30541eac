package modal

import (
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// gRPC's default buffer pool has tiers of 256 B, 4, 16 and 32 KiB, then
// 1 MiB: every chunk message between 32 KiB and 1 MiB (a few 20 KB frames)
// took, and cleared, a 1 MiB buffer, once per spawn in flight. Tiers at
// every power of two from 256 B to 16 MiB waste at most half of a message.
// The SDK dials its own connections, so the pool can only be set process
// wide, and only at initialisation; this adapter is the process's only
// gRPC user.
func init() {
	exponents := make([]uint8, 0, 17)
	for e := uint8(8); e <= 24; e++ {
		exponents = append(exponents, e)
	}
	pool, err := mem.NewBinaryTieredBufferPool(exponents...)
	if err != nil {
		panic("modal: gRPC buffer pool: " + err.Error())
	}
	experimental.SetDefaultBufferPool(pool)
}
