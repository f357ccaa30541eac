package jpegscene_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/scene/jpegscene"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scene draws a textured picture: stripes whose frequency and phase depend on
// seed, plus a bright box, shifted right by shift pixels.
func scene(w, h, seed, shift int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	fx := 2 * math.Pi * float64(3+seed) / float64(w)
	fy := 2 * math.Pi * float64(2+2*seed) / float64(h)
	for y := range h {
		for x := range w {
			sx := float64(x - shift)
			v := 128 + 60*math.Sin(fx*sx+float64(seed)) + 50*math.Cos(fy*float64(y)+fx*sx/3)
			if (x-shift)%(w/4) < w/10 && y > h/3 && y < 2*h/3 {
				v = 250
			}
			img.Y[y*img.YStride+x] = uint8(max(0, min(255, v)))
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 128, 128
	}
	return img
}

// boxBlur blurs the luma plane with a (2r+1)² box.
func boxBlur(src *image.YCbCr, r int) *image.YCbCr {
	b := src.Bounds()
	dst := image.NewYCbCr(b, src.SubsampleRatio)
	copy(dst.Cb, src.Cb)
	copy(dst.Cr, src.Cr)
	for y := range b.Dy() {
		for x := range b.Dx() {
			var s, n int
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					xx, yy := x+dx, y+dy
					if xx >= 0 && yy >= 0 && xx < b.Dx() && yy < b.Dy() {
						s += int(src.Y[yy*src.YStride+xx])
						n++
					}
				}
			}
			dst.Y[y*dst.YStride+x] = uint8(s / n)
		}
	}
	return dst
}

func encode(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}))
	return buf.Bytes()
}

func analyze(t *testing.T, frame []byte) ports.FrameSignature {
	t.Helper()
	sig, err := jpegscene.Analyzer{}.Analyze(frame)
	require.NoError(t, err)
	return sig
}

func TestSameSceneHashesAlikeAcrossQuality(t *testing.T) {
	img := scene(640, 480, 1, 0)
	hi, lo := analyze(t, encode(t, img, 95)), analyze(t, encode(t, img, 40))
	assert.LessOrEqual(t, hi.Distance(lo), 2, "re-encoding must barely move the hash")
	assert.InDelta(t, hi.MeanLuma, lo.MeanLuma, 2)
}

func TestDifferentScenesHashApart(t *testing.T) {
	a := analyze(t, encode(t, scene(640, 480, 1, 0), 85))
	b := analyze(t, encode(t, scene(640, 480, 4, 0), 85))
	assert.GreaterOrEqual(t, a.Distance(b), 16, "a new scene must differ in many bits")
	// A small pan moves the hash by fewer bits than a new scene.
	pan := analyze(t, encode(t, scene(640, 480, 1, 8), 85))
	assert.Less(t, a.Distance(pan), a.Distance(b))
}

func TestDarkFrameHasLowMeanLuma(t *testing.T) {
	black := image.NewGray(image.Rect(0, 0, 320, 240))
	for i := range black.Pix {
		black.Pix[i] = 6
	}
	dark := analyze(t, encode(t, black, 85))
	assert.Less(t, dark.MeanLuma, 10.0)
	assert.Less(t, dark.Sharpness, 1.0, "a flat frame has no edges")
	bright := analyze(t, encode(t, scene(320, 240, 1, 0), 85))
	assert.Greater(t, bright.MeanLuma, 80.0)
}

func TestBlurLowersSharpness(t *testing.T) {
	img := scene(320, 240, 2, 0)
	sharp := analyze(t, encode(t, img, 85))
	blurred := analyze(t, encode(t, boxBlur(img, 6), 85))
	assert.Less(t, blurred.Sharpness, sharp.Sharpness/4,
		"sharp %.1f, blurred %.1f", sharp.Sharpness, blurred.Sharpness)
}

func TestGrayJPEG(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			g.SetGray(x, y, color.Gray{Y: uint8(x * 4)})
		}
	}
	sig := analyze(t, encode(t, g, 90))
	// Brightness rises left to right: no cell is brighter than its right
	// neighbour, so no bit is set.
	assert.Equal(t, uint64(0), sig.Hash)
	assert.InDelta(t, 126, sig.MeanLuma, 3)
}

func TestUndecodableFrames(t *testing.T) {
	valid := encode(t, scene(320, 240, 1, 0), 85)
	// The SOF0 segment (FF C0, length, precision) is followed by height and
	// width; claim 60000×60000 without adding any data.
	huge := bytes.Clone(valid)
	sof := bytes.Index(huge, []byte{0xFF, 0xC0})
	require.Positive(t, sof)
	binary.BigEndian.PutUint16(huge[sof+5:], 60000)
	binary.BigEndian.PutUint16(huge[sof+7:], 60000)

	cases := map[string][]byte{
		"empty":     nil,
		"not jpeg":  []byte("hello, this is not a picture"),
		"truncated": valid[:len(valid)/2],
		"huge":      huge,
		"tiny":      encode(t, image.NewGray(image.Rect(0, 0, 4, 4)), 85),
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := jpegscene.Analyzer{}.Analyze(frame)
			require.ErrorIs(t, err, ports.ErrUndecodableFrame)
		})
	}
	// A smaller MaxPixels refuses what the default accepts.
	_, err := jpegscene.Analyzer{MaxPixels: 320*240 - 1}.Analyze(valid)
	require.ErrorIs(t, err, ports.ErrUndecodableFrame)
}

// FuzzAnalyze: any input yields a signature in range or ErrUndecodableFrame,
// never a panic.
func FuzzAnalyze(f *testing.F) {
	f.Add(encode(f, scene(64, 48, 1, 0), 85))
	f.Add(encode(f, image.NewGray(image.Rect(0, 0, 16, 16)), 50))
	f.Add([]byte{0xFF, 0xD8, 0xFF})
	f.Fuzz(func(t *testing.T, frame []byte) {
		sig, err := jpegscene.Analyzer{MaxPixels: 1 << 20}.Analyze(frame)
		if err != nil {
			require.ErrorIs(t, err, ports.ErrUndecodableFrame)
			return
		}
		require.GreaterOrEqual(t, sig.MeanLuma, 0.0)
		require.LessOrEqual(t, sig.MeanLuma, 255.0)
		require.GreaterOrEqual(t, sig.Sharpness, 0.0)
	})
}

var sizes = []struct{ w, h int }{{320, 240}, {640, 480}, {1280, 720}}

// BenchmarkAnalyze is the cost of one frame's signature; Decode and
// DecodeConfig show how much of it the standard decoder takes.
func BenchmarkAnalyze(b *testing.B) {
	for _, s := range sizes {
		frame := encode(b, scene(s.w, s.h, 1, 0), 80)
		name := fmt.Sprintf("%dx%d", s.w, s.h)
		b.Run("Analyze/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := (jpegscene.Analyzer{}).Analyze(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Decode/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jpeg.Decode(bytes.NewReader(frame)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("DecodeConfig/"+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := jpeg.DecodeConfig(bytes.NewReader(frame)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
