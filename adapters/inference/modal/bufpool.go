package modal

import (
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// SetGRPCBufferPool replaces gRPC's default buffer pool, the one its
// clients and its proto codec use, with tiers at every power of two from
// 256 B to 16 MiB. The default pool jumps from 32 KiB to 1 MiB, so every
// chunk message of a few frames took, and cleared, a 1 MiB buffer, once per
// spawn in flight; now a message wastes at most half its size. The SDK
// dials its own connections, so the pool can only be set process-wide: call
// this from an init function of the main package, before any gRPC
// connection exists, as gRPC requires. The bundled binary does.
func SetGRPCBufferPool() {
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
