package webui_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/frontend/edgegate"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/frontend/webui"
	"github.com/foresight-vision/foresight/adapters/inference/modal"
	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
	"github.com/foresight-vision/foresight/adapters/notify/poke"
	"github.com/foresight-vision/foresight/adapters/notify/poke/poketest"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// chromiumFlags are the browser's command line, on top of the debugging pipe
// and about:blank that chromedp adds: headless, no outside network, and a fake
// camera that needs no permission prompt.
var chromiumFlags = []string{
	"headless", "no-sandbox", "disable-gpu", "no-first-run", "disable-background-networking",
	"disable-component-update", "disable-sync", "disable-quic",
	"use-fake-device-for-media-stream", "use-fake-ui-for-media-stream",
}

// findChromium returns the browser binary, or "" when there is none.
func findChromium() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium for the rest of the test and returns a
// context for one tab in it, and the page's uncaught exceptions so far.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip("chromium not installed; `make check` installs it with apt-get")
	}
	// A fresh profile per run. Not t.TempDir: Chromium's helper processes can
	// still write into it for a moment after exit, which would fail the
	// test's own clean-up.
	dir, err := os.MkdirTemp("", "foresight-webui-chromium-")
	require.NoError(t, err)

	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir)}
	for _, f := range chromiumFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)

	var mu sync.Mutex
	var exceptions []string
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			defer mu.Unlock()
			text := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				text += " " + e.ExceptionDetails.Exception.Description
			}
			exceptions = append(exceptions, text)
		}
	}))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Start the browser without a deadline: a deadline on the first Run
	// would bound the browser's whole life.
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), exceptions...)
	}
}

// swapStreams serves /vision/stream from a handler that the test can replace,
// so it can end every open stream (close 1001) while new ones still work.
type swapStreams struct {
	cfg httpapi.StreamHandlerConfig

	mu      sync.Mutex
	current *httpapi.StreamHandler
	all     []*httpapi.StreamHandler
	hits    atomic.Int64 // requests for /vision/stream, upgrades or not
}

func newSwapStreams(cfg httpapi.StreamHandlerConfig) *swapStreams {
	s := &swapStreams{cfg: cfg}
	s.replace(context.Background())
	return s
}

func (s *swapStreams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.current
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// replace installs a fresh handler and shuts the old one down.
func (s *swapStreams) replace(ctx context.Context) error {
	s.mu.Lock()
	old := s.current
	s.current = httpapi.NewStreamHandler(s.cfg)
	s.all = append(s.all, s.current)
	s.mu.Unlock()
	if old == nil {
		return nil
	}
	return old.Shutdown(ctx)
}

func (s *swapStreams) shutdown(ctx context.Context) error {
	s.mu.Lock()
	all := s.all
	s.mu.Unlock()
	var errs []error
	for _, h := range all {
		errs = append(errs, h.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

type server struct {
	url     string
	store   *sqlite.Store
	modal   *modaltest.Server
	poke    *poketest.Server
	streams *swapStreams
}

// startServer builds the front end the app will build, from its parts: the
// real stream handler over the real Modal adapter talking to the Modal test
// double, the real Poke handler and client talking to the Poke test double,
// and the page at "/". A non-empty magicWord puts the edge gate in front,
// with "/" and /health public.
func startServer(t *testing.T, magicWord string) *server {
	t.Helper()
	return startServerGated(t, func(router http.Handler, _ *sqlite.Store, logger *slog.Logger) http.Handler {
		if magicWord == "" {
			return router
		}
		return edgegate.New(edgegate.Config{MagicWord: magicWord, PublicPaths: []string{"/", "/health"}, Logger: logger}).Wrap(router)
	})
}

// startServerGated is startServer with gate in front of the router.
func startServerGated(t *testing.T, gate func(router http.Handler, store *sqlite.Store, logger *slog.Logger) http.Handler) *server {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)

	fakeModal := modaltest.New(t)
	fakeModal.SetEnv(t)
	t.Setenv("MODAL_ENVIRONMENT", "")
	mcfg := modal.DefaultConfig()
	mcfg.TokenID, mcfg.TokenSecret, mcfg.Logger = "ak-e2e", "as-e2e", logger
	backend, err := modal.New(mcfg)
	require.NoError(t, err)

	fakePoke := poketest.NewServer()
	pokeClient, err := poke.New(poke.Config{URL: fakePoke.URL(), Timeout: 5 * time.Second}, logger)
	require.NoError(t, err)

	// The visual memory as the app wires it: a real SQLite file, a recorder
	// that writes often (so the history panel fills quickly).
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "captions.db"))
	require.NoError(t, err)
	recorder := domain.NewRecorder(store, domain.RecorderConfig{FlushInterval: 50 * time.Millisecond})

	streams := newSwapStreams(httpapi.StreamHandlerConfig{
		Backend: backend,
		// Short chunks, so captions come quickly.
		Stream: domain.StreamConfig{ChunkInterval: 200 * time.Millisecond, InferenceTimeout: 5 * time.Second, Captions: recorder},
		Logger: logger,
	})
	router := httpapi.NewRouter(httpapi.Handlers{
		Stream:        streams,
		Poke:          httpapi.NewPokeHandler(httpapi.PokeConfig{Notifier: pokeClient, ServerKey: "server-key", Logger: logger}),
		Page:          webui.Handler(),
		Captions:      func() ports.CaptionReader { return store },
		Interventions: func() httpapi.InterventionLister { return store },
		Me:            access.MeHandler(),
		Biometrics:    &httpapi.BiometricRoutes{Store: func() ports.BiometricStore { return store }},
		Logger:        logger,
	})
	root := gate(router, store, logger)
	inner := root
	root = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/vision/stream" {
			streams.hits.Add(1) // before the gate, so refused attempts count too
		}
		inner.ServeHTTP(w, r)
	})
	ts := httptest.NewServer(root) // 127.0.0.1: a secure context for getUserMedia

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, streams.shutdown(ctx))
		ts.Close()
		assert.NoError(t, recorder.Close(ctx))
		assert.NoError(t, store.Close())
		assert.NoError(t, backend.Close())
		pokeClient.CloseIdleConnections()
		fakePoke.Close()
	})
	return &server{url: ts.URL, store: store, modal: fakeModal, poke: fakePoke, streams: streams}
}

// run runs an action with a deadline, so a broken page fails fast.
func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err, what)
	return v
}

func steps(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	run(t, ctx, what, chromedp.Steps(actions...))
}

func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(wctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(12*time.Second)))
	if err == nil {
		return
	}
	// Say what the page showed, to tell a broken stream from a broken page.
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	state, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`["status", "acks", "errors", "nudge-result"].map(function (id) {
		var e = document.getElementById(id); return id + "=" + (e ? JSON.stringify(e.textContent) : "?"); }).join(" ")`))
	require.NoError(t, err, "wait: %s (page: %s)", what, state)
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return run(t, ctx, "read #"+id, chromedp.Evaluate[string](`document.getElementById(`+jsString(id)+`).textContent`))
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// press clicks the element by id the way a user's click does (the click
// event, default actions included), without screen coordinates: while a
// stream runs, the caption log grows and moves the page under a
// coordinate click.
func press(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`document.getElementById(` + jsString(id) + `).click()`)
}

func setValue(id, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(function(){var e=document.getElementById(` + jsString(id) + `);e.value=` +
		jsString(value) + `;e.dispatchEvent(new Event("change"));})()`)
}

// open loads the page and starts recording CSP violations.
func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	steps(t, ctx, "open page", chromedp.Navigate(url))
	waitJS(t, ctx, "page script ran", `document.documentElement.dataset.ready === "true"`)
	steps(t, ctx, "watch CSP", chromedp.Evaluate[chromedp.Void](`window.__csp = [];
		document.addEventListener("securitypolicyviolation", function (e) { window.__csp.push(e.violatedDirective + " " + e.blockedURI); });`))
}

func screenshot(t *testing.T, ctx context.Context, name string, width, height int64, mobile bool) {
	t.Helper()
	var opts []chromedp.EmulateViewportOption
	if mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	steps(t, ctx, "viewport", chromedp.EmulateViewport(width, height, opts...))
	png := run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	// Kept only where FORESIGHT_ARTIFACTS asks; otherwise gone with the test.
	dir := os.Getenv("FORESIGHT_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

func TestLivePageInChromium(t *testing.T) {
	ctx, exceptions := browser(t)
	srv := startServer(t, "")

	// A decision of the nudge loop, as the app's loop records it.
	_, err := srv.store.CreateIntervention(context.Background(), ports.Intervention{
		Device: "e2e-glasses", Time: time.Now(), Engine: "rules", Verdict: ports.VerdictYes,
		Reasoning: `rule "sugary snack" matched`, Nudge: "<b>Try some fruit.</b>", Status: ports.DeliveryDelivered,
		DeliveredAt: time.Now(), Attempts: 1,
	})
	require.NoError(t, err)

	open(t, ctx, srv.url+"/")
	steps(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	steps(t, ctx, "set fps", setValue("fps", "10"))
	steps(t, ctx, "set device", setValue("device", "e2e-glasses"))
	// The nudges panel lists the device's decisions, as text (never markup).
	waitJS(t, ctx, "nudges list the decision", `document.getElementById("nudges").children.length === 1`)
	assert.Contains(t, text(t, ctx, "nudges"), "yes \u2013 <b>Try some fruit.</b> [delivered]")
	assert.Equal(t, 0, run(t, ctx, "no markup", chromedp.Evaluate[int](`document.querySelectorAll("#nudges b").length`)))
	assert.Contains(t, text(t, ctx, "nudges-status"), "1 recent on device e2e-glasses")
	steps(t, ctx, "start", chromedp.Click(chromedp.ID("start"))) // a real click, before the page starts moving

	waitJS(t, ctx, "stream open", `document.getElementById("status").dataset.state === "open"`)
	waitJS(t, ctx, "acks count up", `Number(document.getElementById("acks").textContent) > 5`)
	waitJS(t, ctx, "a caption", `document.getElementById("caption").textContent.trim() !== ""`)

	caption := text(t, ctx, "caption")
	assert.Regexp(t, `^chunk \d+: \d+ frames$`, caption, "the caption the Modal double made")
	assert.Regexp(t, `^\d+\.\d–\d+\.\d s`, text(t, ctx, "caption-meta"), "chunk window")
	assert.Contains(t, text(t, ctx, "caption-log"), caption)
	assert.Regexp(t, `^\d+ ms \(avg \d+\)$`, text(t, ctx, "rtt"))
	assert.Regexp(t, `^\d+\.\d$`, text(t, ctx, "ack-rate"))
	assert.NotEqual(t, "0.0", text(t, ctx, "ack-rate"))
	// The history panel lists the device's stored captions, and searches them.
	waitJS(t, ctx, "history lists a caption", `/chunk \d+: \d+ frames/.test(document.getElementById("history").textContent)`)
	assert.Contains(t, text(t, ctx, "history-status"), "on device e2e-glasses")
	steps(t, ctx, "search", setValue("history-q", "frames"), press("history-search"))
	waitJS(t, ctx, "search answered", `/found for/.test(document.getElementById("history-status").textContent)`)
	found := run(t, ctx, "found rows", chromedp.Evaluate[int](`document.getElementById("history").children.length`))
	assert.Positive(t, found)
	steps(t, ctx, "search nothing", setValue("history-q", "zebra"), press("history-search"))
	waitJS(t, ctx, "nothing found", `/^0 found for/.test(document.getElementById("history-status").textContent)`)
	assert.Zero(t, run(t, ctx, "no rows", chromedp.Evaluate[int](`document.getElementById("history").children.length`)))
	steps(t, ctx, "clear search", setValue("history-q", ""), press("history-search"))
	page, err := srv.store.QueryCaptions(context.Background(), ports.CaptionQuery{Device: "e2e-glasses"})
	require.NoError(t, err)
	assert.NotEmpty(t, page.Captions, "the page streams as the device it names")
	savedDevice := run(t, ctx, "saved device", chromedp.Evaluate[string](`localStorage.getItem("foresight.device") || ""`))
	assert.Equal(t, "e2e-glasses", savedDevice)

	cameras := run(t, ctx, "cameras", chromedp.Evaluate[int](`document.getElementById("camera").options.length`))
	assert.GreaterOrEqual(t, cameras, 2, "the fake camera is listed after permission")

	// The page sent real JPEG frames, each one a binary message.
	calls := srv.modal.CallsTo(modaltest.MethodInferChunk)
	require.NotEmpty(t, calls)
	require.NotEmpty(t, calls[0].Frames)
	assert.True(t, bytes.HasPrefix(calls[0].Frames[0], []byte{0xFF, 0xD8, 0xFF}), "frames are JPEG")

	screenshot(t, ctx, "foresight-webui-e2e.png", 390, 844, true)
	screenshot(t, ctx, "foresight-webui-e2e-desktop.png", 1280, 900, false)

	// Nothing overflows sideways on the narrowest phone.
	steps(t, ctx, "narrow viewport", chromedp.EmulateViewport(320, 640, chromedp.EmulateMobile))
	overflow := run(t, ctx, "overflow", chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
	assert.LessOrEqual(t, overflow, 0, "page wider than a 320 px screen")

	// An inference failure shows up in the error list.
	srv.modal.SetBehavior(modaltest.Behavior{Fail: "model exploded"})
	waitJS(t, ctx, "inference error shown", `document.getElementById("errors").textContent.indexOf("model exploded") >= 0`)
	srv.modal.SetBehavior(modaltest.Behavior{})

	// The server ends the stream (1001); the page reconnects by itself.
	streamsBefore := srv.streams.hits.Load()
	acksBefore := text(t, ctx, "acks")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	require.NoError(t, srv.streams.replace(sctx))
	cancel()
	waitJS(t, ctx, "reconnected", `document.getElementById("status").dataset.state === "open" && Number(document.getElementById("acks").textContent) > `+acksBefore+` + 3`)
	assert.Greater(t, srv.streams.hits.Load(), streamsBefore)

	// The nudge form goes through the server to Poke with the server's key.
	steps(t, ctx, "write nudge", setValue("nudge-message", "hello from the e2e test"))
	steps(t, ctx, "send nudge", press("nudge-send"))
	waitJS(t, ctx, "nudge answered", `document.getElementById("nudge-result").dataset.outcome === "ok"`)
	assert.Contains(t, text(t, ctx, "nudge-result"), "Sent (200)")
	reqs := srv.poke.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "hello from the e2e test", reqs[0].Message)
	assert.Equal(t, "Bearer server-key", reqs[0].Authorization)

	// A failing upstream shows the server's detail.
	srv.poke.FailNext(http.StatusUnauthorized, `{"error":"bad key"}`)
	steps(t, ctx, "send failing nudge", press("nudge-send"))
	waitJS(t, ctx, "nudge failure shown", `document.getElementById("nudge-result").dataset.outcome === "error"`)
	assert.Contains(t, text(t, ctx, "nudge-result"), "Failed (502): poke upstream")

	steps(t, ctx, "stop", press("stop"))
	waitJS(t, ctx, "closed", `document.getElementById("status").dataset.state === "closed" && /1000/.test(document.getElementById("status").textContent)`)
	assert.Contains(t, text(t, ctx, "status"), "stopped by user")
	live := run(t, ctx, "camera released", chromedp.Evaluate[bool](`document.getElementById("preview").srcObject !== null`))
	assert.False(t, live, "stop releases the camera")

	csp := run(t, ctx, "csp violations", chromedp.Evaluate[[]string](`window.__csp`))
	assert.Empty(t, csp, "Content-Security-Policy violations")
	assert.Empty(t, exceptions(), "uncaught exceptions in the page")
}

func TestLivePageMagicWord(t *testing.T) {
	ctx, exceptions := browser(t)
	srv := startServer(t, "open-sesame")

	// The page itself is public.
	open(t, ctx, srv.url+"/")

	// A wrong word: the page learns the 403 and gives up instead of looping.
	steps(t, ctx, "wrong word", setValue("magic-word", "wrong"))
	// By keyboard: focus the button and press Enter.
	steps(t, ctx, "start by keyboard", chromedp.Focus(chromedp.ID("start")), chromedp.KeyEvent("\r"))
	waitJS(t, ctx, "refused", `document.getElementById("status").dataset.state === "closed" && /403/.test(document.getElementById("status").textContent)`)
	assert.Contains(t, text(t, ctx, "errors"), "magic word")
	assert.Equal(t, int64(2), srv.streams.hits.Load(), "one handshake and one probe, no retry loop")
	startEnabled := run(t, ctx, "start enabled", chromedp.Evaluate[bool](`!document.getElementById("start").disabled`))
	assert.True(t, startEnabled)

	// A nudge with the wrong word is refused by the gate too.
	steps(t, ctx, "send nudge", press("nudge-send"))
	waitJS(t, ctx, "nudge refused", `document.getElementById("nudge-result").dataset.outcome === "error"`)
	assert.Contains(t, text(t, ctx, "nudge-result"), "Failed (403)")

	// The right word, remembered for the tab on request.
	steps(t, ctx, "right word", setValue("magic-word", "open-sesame"))
	steps(t, ctx, "remember", press("remember-word"))
	steps(t, ctx, "start again", press("start"))
	waitJS(t, ctx, "acks count up", `Number(document.getElementById("acks").textContent) > 3`)
	steps(t, ctx, "send nudge", press("nudge-send"))
	waitJS(t, ctx, "nudge sent", `document.getElementById("nudge-result").dataset.outcome === "ok"`)

	stored := run(t, ctx, "stored word", chromedp.Evaluate[string](`sessionStorage.getItem("foresight.magicWord") || ""`))
	assert.Equal(t, "open-sesame", stored)
	href := run(t, ctx, "page url", chromedp.Evaluate[string](`location.href`))
	assert.NotContains(t, href, "sesame", "the word never reaches the address bar")
	local := run(t, ctx, "local storage", chromedp.Evaluate[int](`localStorage.length`))
	assert.Zero(t, local)

	// Unticking forgets it.
	steps(t, ctx, "forget", press("remember-word"))
	stored = run(t, ctx, "stored word", chromedp.Evaluate[string](`sessionStorage.getItem("foresight.magicWord") || ""`))
	assert.Empty(t, stored)

	steps(t, ctx, "stop", press("stop"))
	waitJS(t, ctx, "closed", `document.getElementById("status").dataset.state === "closed"`)
	assert.Empty(t, exceptions(), "uncaught exceptions in the page")
}

// TestLivePageShowsTheBody: the Body panel draws the device's heart rate
// as an inline SVG line and states the newest window's heart rate and
// alert level, under the page's CSP.
func TestLivePageShowsTheBody(t *testing.T) {
	ctx, exceptions := browser(t)
	srv := startServer(t, "")
	num := func(v float64) *float64 { return &v }
	start := time.Now().Add(-time.Minute).UTC()
	var windows []ports.BiometricWindow
	for i, hr := range []float64{72, 80, 95, 131} {
		w := ports.BiometricWindow{Device: "e2e-wrist", WindowID: fmt.Sprintf("w%d", i),
			Start: start.Add(time.Duration(i) * 10 * time.Second), Duration: 10 * time.Second,
			Features: map[string]*float64{"hrMean": num(hr), "hrMin": num(hr - 4), "hrMax": num(hr + 6)}, StoredAt: time.Now()}
		if i == 3 {
			w.AlertLevel = "HIGH ALERT"
		}
		windows = append(windows, w)
	}
	windows = append(windows, ports.BiometricWindow{Device: "e2e-wrist", WindowID: "no-ppg", Start: start.Add(-time.Hour),
		Features: map[string]*float64{"hrMean": nil}, StoredAt: time.Now()})
	require.NoError(t, srv.store.SaveBiometrics(context.Background(), windows))

	open(t, ctx, srv.url+"/")
	steps(t, ctx, "set device", setValue("device", "e2e-wrist"))
	waitJS(t, ctx, "the chart has its points", `document.getElementById("body-chart").dataset.points === "4"`)
	assert.Equal(t, 1, run(t, ctx, "one line", chromedp.Evaluate[int](`document.querySelectorAll("#body-chart polyline").length`)))
	assert.Contains(t, text(t, ctx, "body-latest"), "heart rate 131 bpm (127\u2013137), alert HIGH ALERT")
	assert.Contains(t, text(t, ctx, "body-status"), "5 recent windows on device e2e-wrist")
	assert.Empty(t, run(t, ctx, "csp violations", chromedp.Evaluate[[]string](`window.__csp`)))
	assert.Empty(t, exceptions())
}
