// Command bioload sustains biometric uploads against a Foresight server,
// as many wearer apps would: --devices devices, each uploading one window
// every --every, spread evenly, for --duration; it prints the upload
// answers' latency percentiles and the non-200 count as one JSON object.
// docs/benchmarks.md runs it beside `foresight bench`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	devices := flag.Int("devices", 2000, "devices uploading")
	every := flag.Duration("every", 10*time.Second, "time between two windows of one device")
	duration := flag.Duration("duration", 20*time.Second, "how long to upload")
	flag.Parse()
	if err := run(*base, *devices, *every, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "bioload:", err)
		os.Exit(1)
	}
}

func run(base string, devices int, every, duration time.Duration) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	interval := every / time.Duration(devices) // one upload per interval, devices in turn
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var mu sync.Mutex
	var lat []time.Duration
	var failed, sent int
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				if len(lat) == 0 {
					return 0
				}
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			return json.NewEncoder(os.Stdout).Encode(map[string]any{
				"sent": sent, "ok": len(lat), "failed": failed, "per_second": float64(sent) / duration.Seconds(),
				"p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1),
			})
		case <-tick.C:
		}
		sent++
		device := fmt.Sprintf("wrist-%05d", i%devices)
		body := fmt.Sprintf(`{"windowId":"w-%d","timestamp":%d,"durationMs":10000,"qualityScore":0.9,"hrMean":%d,"hrMin":60,"hrMax":110,"movementIntensity":0.2,"sdnn":41.5,"riskPrediction":{"alertLevel":"NO ALERT","overallSusceptibility":0.2}}`,
			i, time.Now().UnixMilli(), 60+i%60)
		wg.Go(func() {
			start := time.Now()
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/biometrics/upload", bytes.NewBufferString(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("x-foresight-device", device)
			resp, err := client.Do(req)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed++
				return
			}
			lat = append(lat, took)
		})
	}
}
