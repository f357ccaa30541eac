package benchcmd

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress prints one status line per second on stderr while a run goes:
// rewritten in place with \r on a terminal, one line each otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	r        *run
	start    time.Time
	mu       sync.Mutex
	phaseStr string
	done     chan struct{}
	finished chan struct{}
	once     sync.Once
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newProgress(w io.Writer, r *run) *progress {
	p := &progress{w: w, tty: isTerminal(w), r: r, start: time.Now(), phaseStr: "connect",
		done: make(chan struct{}), finished: make(chan struct{})}
	go p.loop()
	return p
}

func (p *progress) phase(s string) {
	p.mu.Lock()
	p.phaseStr = s
	p.mu.Unlock()
}

func (p *progress) loop() {
	defer close(p.finished)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastAcks int64
	for {
		select {
		case <-p.done:
			if p.tty {
				fmt.Fprint(p.w, "\n")
			}
			return
		case <-t.C:
		}
		p.mu.Lock()
		ph := p.phaseStr
		p.mu.Unlock()
		acks := p.r.acks.Load()
		line := fmt.Sprintf("%4.0fs %-7s streams %d/%d (failed %d)  sent %d  acks %d (%d/s)  captions %d  errors %d  p99 %.2f ms",
			time.Since(p.start).Seconds(), ph, p.r.connected.Load(), p.r.o.Conns, p.r.failed.Load(),
			p.r.sent.Load(), acks, acks-lastAcks, p.r.captions.Load(),
			p.r.inferenceErrs.Load()+p.r.transportEr.Load(), ms(p.r.lat.quantile(0.99)))
		lastAcks = acks
		if p.tty {
			fmt.Fprintf(p.w, "\r%s\033[K", line)
		} else {
			fmt.Fprintln(p.w, line)
		}
	}
}

// stop ends the progress goroutine and waits for it; safe to call twice.
func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	<-p.finished
}
