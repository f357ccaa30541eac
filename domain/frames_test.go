package domain_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// The expectations are vlm_logic.sample_indices' own answers (Python,
// round half to even), so the Go port cannot drift from the Gemma app.
func TestSampleFrameIndices(t *testing.T) {
	tests := []struct {
		count, maxCount int
		want            []int
	}{
		{0, 6, nil},
		{5, 0, nil},
		{-1, 6, nil},
		{3, 6, []int{0, 1, 2}},
		{6, 6, []int{0, 1, 2, 3, 4, 5}},
		{7, 6, []int{0, 1, 2, 4, 5, 6}},
		{10, 6, []int{0, 2, 4, 5, 7, 9}},
		{11, 6, []int{0, 2, 4, 6, 8, 10}},
		{13, 6, []int{0, 2, 5, 7, 10, 12}},
		{16, 6, []int{0, 3, 6, 9, 12, 15}},
		{21, 6, []int{0, 4, 8, 12, 16, 20}},
		{120, 6, []int{0, 24, 48, 71, 95, 119}},
		{2, 1, []int{0}},
		{5, 2, []int{0, 4}},
		{8, 3, []int{0, 4, 7}}, // 3.5 rounds to even: 4
		{9, 4, []int{0, 3, 5, 8}},
	}
	for _, tt := range tests {
		got := domain.SampleFrameIndices(tt.count, tt.maxCount)
		assert.Equal(t, tt.want, got, "count %d, max %d", tt.count, tt.maxCount)
		if len(got) > 1 {
			assert.Equal(t, 0, got[0], "first frame included")
			assert.Equal(t, tt.count-1, got[len(got)-1], "last frame included")
		}
	}
}

func TestChunkCarriesSelectedFrames(t *testing.T) {
	tests := []struct {
		name      string
		maxFrames int
		wantIdx   []int
	}{
		{"default picks 6 of 10", domain.DefaultMaxFramesPerChunk, []int{0, 2, 4, 5, 7, 9}},
		{"3 of 10", 3, []int{0, 4, 9}}, // step 4.5 rounds half to even: 4
		{"zero keeps all", 0, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"negative keeps all", -1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"more than received keeps all", 20, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := domaintest.NewGate()
			budget := domain.NewMemoryBudget(1 << 20)
			h := newHarness(t, domain.StreamConfig{ChunkInterval: time.Second, MaxFramesPerChunk: tt.maxFrames, Budget: budget}, gate.Infer)
			var received int64
			for i := range 9 {
				f := make([]byte, 10+i) // sizes tell the frames apart
				f[0] = byte(i)
				received += int64(len(f))
				h.stream.HandleFrame(f)
			}
			h.clock.Advance(time.Second)
			last := make([]byte, 19)
			last[0] = 9
			received += int64(len(last))
			h.stream.HandleFrame(last) // cuts the chunk; the call hangs on the gate
			require.True(t, h.stream.Busy())

			var wantBytes int64
			for _, i := range tt.wantIdx {
				wantBytes += int64(10 + i)
			}
			// The frames left out gave their bytes back at once, while the
			// call still holds the ones it was sent.
			assert.Equal(t, wantBytes, budget.Used())

			go gate.Release(ports.Result{Caption: "x", Set: ports.ResultCaption}, nil)
			h.stream.AwaitCall()
			chunks := h.session().Chunks()
			require.Len(t, chunks, 1)
			c := chunks[0]
			var got []int
			for _, f := range c.Frames {
				got = append(got, int(f[0]))
				assert.Len(t, f, 10+int(f[0]), "frame %d is the one received", f[0])
			}
			assert.Equal(t, tt.wantIdx, got)
			assert.Equal(t, 10, c.ReceivedFrames)
			assert.Equal(t, received, c.ReceivedBytes)
			assert.Zero(t, budget.Used(), "all bytes back once the call is done")
			h.stream.Close(context.Background())
		})
	}
}
