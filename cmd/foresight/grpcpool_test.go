package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/mem"
)

func TestBinarySizesGRPCBuffersToTheMessage(t *testing.T) {
	buf := mem.DefaultBufferPool().Get(120_000) // a chunk of six 20 KB frames
	defer mem.DefaultBufferPool().Put(buf)
	assert.Equal(t, 128<<10, cap(*buf), "the next power of two, not gRPC's default 1 MiB tier")
}
