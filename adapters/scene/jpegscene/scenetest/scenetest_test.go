package scenetest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/scene/jpegscene/scenetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSegmentsCoverTheClipInOrder(t *testing.T) {
	next := 0
	for _, s := range scenetest.Segments {
		assert.Equal(t, next, s.From, s.Name)
		assert.Positive(t, s.Seconds, s.Name)
		next = s.From + s.Seconds
	}
	assert.Equal(t, scenetest.Seconds, next)
	for second := range scenetest.Seconds {
		s := scenetest.SegmentAt(second)
		assert.True(t, second >= s.From && second < s.From+s.Seconds)
	}
}

func TestMakeClip(t *testing.T) {
	frames := scenetest.MakeClip(t, 160, 120) // skips without ffmpeg
	assert.Len(t, frames, scenetest.Seconds*scenetest.FPS)
	for _, f := range frames {
		assert.Equal(t, []byte{0xFF, 0xD8}, f[:2], "JPEG start of image")
	}
}
