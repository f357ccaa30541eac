// Package jpegscene is a ports.FrameAnalyzer for JPEG frames, on the standard
// library's decoder. It reads only the luma plane of the decoded image (no
// colour conversion), reduces it by an integer box filter to a grid about
// GridWidth cells wide, and derives from that grid a 64-bit difference hash,
// the mean luma and the variance of the Laplacian.
//
// The full decode is the cost: image/jpeg has no reduced (DCT-scaled)
// decode and always decodes the chroma planes too, so a frame costs about
// what jpeg.Decode costs (see docs/benchmarks.md); everything after it is a
// small fraction. jpeg.DecodeConfig runs first so a frame whose header
// claims a huge picture is refused before any pixel memory is allocated.
package jpegscene

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of Analyzer.
const (
	// DefaultGridWidth is the target width of the reduced luma grid the
	// mean and the sharpness are measured on.
	DefaultGridWidth = 128
	// DefaultMaxPixels bounds the picture size accepted (4K UHD): a decoded
	// 4:2:0 frame takes 1.5 bytes per pixel, here at most ~12 MiB.
	DefaultMaxPixels = 3840 * 2160
)

// Analyzer analyses JPEG frames. The zero value uses the defaults. It is
// safe for concurrent use: it holds no state.
type Analyzer struct {
	// GridWidth is the target width of the reduced grid (zero: default).
	GridWidth int
	// MaxPixels refuses larger pictures as undecodable (zero: default).
	MaxPixels int
}

var _ ports.FrameAnalyzer = Analyzer{}

const (
	hashCols = 9 // 9 columns give 8 left-right differences per row
	hashRows = 8
)

// Analyze decodes frame and returns its signature.
func (a Analyzer) Analyze(frame []byte) (ports.FrameSignature, error) {
	maxPixels := a.MaxPixels
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	gridWidth := a.GridWidth
	if gridWidth <= 0 {
		gridWidth = DefaultGridWidth
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(frame))
	if err != nil {
		return ports.FrameSignature{}, fmt.Errorf("%w: %w", ports.ErrUndecodableFrame, err)
	}
	if cfg.Width < hashCols || cfg.Height < hashRows {
		return ports.FrameSignature{}, fmt.Errorf("%w: %d×%d is smaller than %d×%d",
			ports.ErrUndecodableFrame, cfg.Width, cfg.Height, hashCols, hashRows)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return ports.FrameSignature{}, fmt.Errorf("%w: %d×%d is more than %d pixels",
			ports.ErrUndecodableFrame, cfg.Width, cfg.Height, maxPixels)
	}
	img, err := jpeg.Decode(bytes.NewReader(frame))
	if err != nil {
		return ports.FrameSignature{}, fmt.Errorf("%w: %w", ports.ErrUndecodableFrame, err)
	}
	plane := lumaOf(img)
	return signatureOf(reduce(plane, gridWidth)), nil
}

// luma is an 8-bit plane: Pix[y*Stride+x] for x < W, y < H.
type luma struct {
	Pix    []byte
	Stride int
	W, H   int
}

// lumaOf returns the image's luma plane without copying when the decoder
// produced one (YCbCr and Gray, i.e. every baseline or progressive JPEG but
// the rare CMYK ones, which are converted pixel by pixel).
func lumaOf(img image.Image) luma {
	r := img.Bounds()
	switch m := img.(type) {
	case *image.YCbCr:
		return luma{Pix: m.Y[m.YOffset(r.Min.X, r.Min.Y):], Stride: m.YStride, W: r.Dx(), H: r.Dy()}
	case *image.Gray:
		return luma{Pix: m.Pix[m.PixOffset(r.Min.X, r.Min.Y):], Stride: m.Stride, W: r.Dx(), H: r.Dy()}
	}
	g := image.NewGray(r)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			g.SetGray(x, y, color.GrayModel.Convert(img.At(x, y)).(color.Gray))
		}
	}
	return luma{Pix: g.Pix, Stride: g.Stride, W: r.Dx(), H: r.Dy()}
}

// grid is the reduced plane: cell means in luma levels.
type grid struct {
	cells []float64
	w, h  int
}

// reduce averages factor×factor blocks, factor = W / gridWidth rounded down
// (at least 1); the few rows and columns that do not fill a block are left
// out. An integer box keeps every cell an exact mean of the same number of
// pixels, so the Laplacian sees no resampling pattern.
func reduce(p luma, gridWidth int) grid {
	factor := max(1, p.W/gridWidth)
	// Keep at least the 9×8 the hash needs.
	factor = max(1, min(factor, p.W/hashCols, p.H/hashRows))
	gw, gh := p.W/factor, p.H/factor
	sums := make([]uint32, gw)
	cells := make([]float64, gw*gh)
	area := float64(factor * factor)
	for gy := range gh {
		clear(sums)
		for y := gy * factor; y < (gy+1)*factor; y++ {
			row := p.Pix[y*p.Stride : y*p.Stride+gw*factor]
			for gx := range gw {
				var s uint32
				for _, v := range row[gx*factor : (gx+1)*factor] {
					s += uint32(v)
				}
				sums[gx] += s
			}
		}
		for gx, s := range sums {
			cells[gy*gw+gx] = float64(s) / area
		}
	}
	return grid{cells: cells, w: gw, h: gh}
}

func signatureOf(g grid) ports.FrameSignature {
	var sig ports.FrameSignature
	var total float64
	for _, v := range g.cells {
		total += v
	}
	sig.MeanLuma = total / float64(len(g.cells))

	// 9×8 reduction of the grid for the hash: cell (cx, cy) averages grid
	// columns [cx*w/9, (cx+1)*w/9) and rows [cy*h/8, (cy+1)*h/8).
	var small [hashRows][hashCols]float64
	for cy := range hashRows {
		y0, y1 := cy*g.h/hashRows, (cy+1)*g.h/hashRows
		for cx := range hashCols {
			x0, x1 := cx*g.w/hashCols, (cx+1)*g.w/hashCols
			var s float64
			for y := y0; y < y1; y++ {
				for _, v := range g.cells[y*g.w+x0 : y*g.w+x1] {
					s += v
				}
			}
			small[cy][cx] = s / float64((y1-y0)*(x1-x0))
		}
	}
	bit := 0
	for cy := range hashRows {
		for cx := range hashCols - 1 {
			if small[cy][cx] > small[cy][cx+1] {
				sig.Hash |= 1 << bit
			}
			bit++
		}
	}

	// Variance of the 4-neighbour Laplacian over the interior cells.
	var sum, sumSq float64
	n := 0
	for y := 1; y < g.h-1; y++ {
		for x := 1; x < g.w-1; x++ {
			i := y*g.w + x
			l := g.cells[i-1] + g.cells[i+1] + g.cells[i-g.w] + g.cells[i+g.w] - 4*g.cells[i]
			sum += l
			sumSq += l * l
			n++
		}
	}
	if n > 0 {
		mean := sum / float64(n)
		sig.Sharpness = max(0, sumSq/float64(n)-mean*mean) // no rounding below zero
	}
	return sig
}
