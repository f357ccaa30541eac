package modal

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/mem"
)

func TestChunkMessagesGetBuffersSizedToThem(t *testing.T) {
	buf := mem.DefaultBufferPool().Get(120_000) // six 20 KB frames
	defer mem.DefaultBufferPool().Put(buf)
	assert.Len(t, *buf, 120_000)
	assert.Equal(t, 128<<10, cap(*buf), "the next power of two, not the 1 MiB tier of gRPC's default pool")
}
