package statsrv

import (
	"context"
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// The status page's files, embedded: the page, its script and the
// charting library (uPlot, vendored from npm by web/vendor.sh). Nothing
// is loaded from anywhere else, and the page's Content-Security-Policy
// says so to the browser.
//
//go:embed web/index.html web/page.js web/uPlot.iife.min.js web/uPlot.min.css
var web embed.FS

// History of the status page: a sample every historyEvery, for an hour.
const (
	historyEvery = 10 * time.Second
	historyLen   = 360
	// pageConns bounds the page's connections at once.
	pageConns = 16
)

// sample is what the page's graphs show, at one time.
type sample struct {
	t        time.Time
	counters stats.Snapshot
	rtt      float64 // seconds; -1: no keepalives
	loss     float64
	bgpUp    int // established sessions; -1: no bgp section
}

// history is the last hour's samples, oldest first, bounded, and
// /history.json made from them once per sample (not per request).
type history struct {
	mu      sync.Mutex
	samples []sample
	body    []byte
}

func (h *history) add(s sample) {
	h.mu.Lock()
	if len(h.samples) == historyLen {
		copy(h.samples, h.samples[1:])
		h.samples = h.samples[:historyLen-1]
	}
	h.samples = append(h.samples, s)
	h.mu.Unlock()
	body, _ := json.Marshal(h.json())
	h.mu.Lock()
	h.body = body
	h.mu.Unlock()
}

// served returns /history.json.
func (h *history) served() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.body
}

// historyJSON is /history.json: per interval (ending at T[i]), the rates
// of the ports (frames/s and bits/s), drops/s by reason (only reasons that
// dropped anything in the hour), the age of the last BPDU each way, the
// peer's round trip and loss, and the BGP sessions established.
type historyJSON struct {
	Every float64              `json:"every_seconds"`
	T     []int64              `json:"t"`
	Rates map[string][]float64 `json:"rates"`
	Drops map[string][]float64 `json:"drops"`
	BPDU  map[string][]float64 `json:"bpdu_age_seconds"`
	RTT   []float64            `json:"rtt_ms,omitempty"`
	Loss  []float64            `json:"loss_percent,omitempty"`
	BGP   []float64            `json:"bgp_established,omitempty"`
}

func (h *history) json() historyJSON {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := historyJSON{Every: historyEvery.Seconds(), Rates: map[string][]float64{}, Drops: map[string][]float64{}, BPDU: map[string][]float64{}}
	rates := []struct {
		name          string
		frames, bytes stats.Counter
	}{{"ul_rx", stats.ULRxPackets, stats.ULRxBytes}, {"ul_tx", stats.ULTxPackets, stats.ULTxBytes},
		{"dl_rx", stats.DLRxPackets, stats.DLRxBytes}, {"dl_tx", stats.DLTxPackets, stats.DLTxBytes}}
	var keepalives, bgp bool
	dropped := map[stats.Counter]bool{} // reasons that dropped anything in the hour
	if n := len(h.samples); n > 0 {
		for c := stats.Counter(0); c < stats.NumCounters; c++ {
			if _, _, drop := c.Drop(); drop && h.samples[n-1].counters[c] != h.samples[0].counters[c] {
				dropped[c] = true
			}
		}
	}
	for i := 1; i < len(h.samples); i++ {
		prev, s := &h.samples[i-1], &h.samples[i]
		secs := s.t.Sub(prev.t).Seconds()
		if secs <= 0 {
			continue
		}
		out.T = append(out.T, s.t.Unix())
		rate := func(c stats.Counter) float64 { return float64(s.counters[c]-prev.counters[c]) / secs }
		for _, r := range rates {
			out.Rates[r.name+"_frames"] = append(out.Rates[r.name+"_frames"], rate(r.frames))
			out.Rates[r.name+"_bits"] = append(out.Rates[r.name+"_bits"], 8*rate(r.bytes))
		}
		for c := range dropped {
			out.Drops[c.Name()] = append(out.Drops[c.Name()], rate(c))
		}
		for _, b := range []struct {
			name string
			c    stats.Counter
		}{{"ul", stats.ULLastBPDU}, {"dl", stats.DLLastBPDU}} {
			age := -1.0
			if ns := s.counters[b.c]; ns != 0 {
				age = s.t.Sub(time.Unix(0, int64(ns))).Seconds()
			}
			out.BPDU[b.name] = append(out.BPDU[b.name], age)
		}
		out.RTT, out.Loss, out.BGP = append(out.RTT, 1000*s.rtt), append(out.Loss, 100*s.loss), append(out.BGP, float64(s.bgpUp))
		keepalives, bgp = keepalives || s.rtt >= 0, bgp || s.bgpUp >= 0
	}
	if !keepalives {
		out.RTT, out.Loss = nil, nil
	}
	if !bgp {
		out.BGP = nil
	}
	return out
}

// sampleOf reads src now.
func sampleOf(src Source, now time.Time) sample {
	st := src.Status()
	s := sample{t: now, counters: src.Snapshot(), rtt: -1, bgpUp: -1}
	if p := st.Path; p != nil {
		s.rtt, s.loss = p.RTT, p.Loss
	}
	if b := st.BGP; b != nil {
		s.bgpUp = 0
		for _, n := range b.Neighbors {
			if n.State == "established" {
				s.bgpUp++
			}
		}
	}
	return s
}

// pageServer is the status page (stats.http).
type pageServer struct {
	srv  *http.Server
	addr string
	hist history
	stop chan struct{}
	done sync.WaitGroup
}

// ServePage serves the read-only status page about src on addr
// (host:port) until closed: / (the page), /status.json (what pwctl
// status --json shows), /counters.json (pwctl stats --json) and
// /history.json (the last hour, sampled every 10 s from now on).
func ServePage(addr string, src Source) (io.Closer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &pageServer{addr: ln.Addr().String(), stop: make(chan struct{})}
	mux := http.NewServeMux()
	files, _ := fs.Sub(web, "web")
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, src.Status()) })
	mux.HandleFunc("GET /counters.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		s := src.Snapshot()
		w.Write(client.MarshalCounters(&s))
	})
	mux.HandleFunc("GET /history.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(p.hist.served())
	})
	p.srv = &http.Server{Handler: headers(mux), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 15 * time.Second, MaxHeaderBytes: 8 << 10}
	p.hist.add(sampleOf(src, time.Now()))
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		p.srv.Serve(netutil.LimitListener(ln, pageConns))
	}()
	go func() {
		defer p.done.Done()
		t := time.NewTicker(historyEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case now := <-t.C:
				p.hist.add(sampleOf(src, now))
			}
		}
	}()
	return p, nil
}

// headers keeps the page to its own files, and read-only. A request must
// name the box by address (Host an IP literal, with or without a port), not
// by a name: a page elsewhere that rebinds a name of its own to the box's
// address (DNS rebinding) cannot read it.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil {
			http.Error(w, "address the status page by IP address", http.StatusMisdirectedRequest)
			return
		}
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Close stops the page.
func (p *pageServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	close(p.stop)
	p.done.Wait()
	return err
}
