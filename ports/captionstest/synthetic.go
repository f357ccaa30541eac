package captionstest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Words every synthetic caption draws from; "coffee" is in about 1 in 100
// captions and "zeppelin" in about 1 in 10,000, so benchmarks can search a
// common and a rare word.
var syntheticWords = strings.Fields(`the wearer looks at a table with cups plates and a laptop screen
	person walks past window street car bus bicycle tree park bench dog cat bird sky cloud sun light
	kitchen sink counter fridge door hallway stairs desk chair book phone keyboard mouse paper pen
	shelf lamp wall floor carpet sofa television remote bottle glass water juice bread apple banana
	orange sandwich plate fork knife spoon bowl soup salad pasta pizza menu receipt cashier shop store
	market crowd queue sign poster map train station platform ticket bag backpack jacket shoe hand
	finger face smile child woman man friend colleague meeting room whiteboard projector slide chart
	holds opens closes picks puts reads writes types points waves talks listens sits stands runs`)

// SyntheticDevices is how many devices Synthetic spreads captions over.
const SyntheticDevices = 100

// Synthetic returns the i-th caption of a deterministic corpus: one
// caption every two seconds per device, 8-16 words each.
func Synthetic(i int) ports.Caption {
	rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	n := 8 + rng.IntN(9)
	words := make([]string, n)
	for j := range words {
		words[j] = syntheticWords[rng.IntN(len(syntheticWords))]
	}
	if rng.IntN(100) == 0 {
		words[rng.IntN(n)] = "coffee"
	}
	if rng.IntN(10_000) == 0 {
		words[rng.IntN(n)] = "zeppelin"
	}
	device := i % SyntheticDevices
	start := base.Add(time.Duration(i/SyntheticDevices) * 2 * time.Second)
	return ports.Caption{
		ID:     fmt.Sprintf("syn-%09d", i),
		Device: fmt.Sprintf("glasses-%03d", device), StreamID: fmt.Sprintf("stream-%03d-%04d", device, i/SyntheticDevices/1800),
		Start: start, End: start.Add(2 * time.Second), ChunkStartS: float64(i/SyntheticDevices%1800) * 2,
		ChunkEndS: float64(i/SyntheticDevices%1800)*2 + 2, Text: strings.Join(words, " "),
		LatencyMS: 400 + float64(rng.IntN(800)), Tokens: int64(n + 4), Backend: "backend-a", Model: "model-a",
	}
}
