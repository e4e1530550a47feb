package statsrv

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/stats"
)

func TestPage(t *testing.T) {
	f := newFake()
	f.st.Path = &client.PeerPath{State: "up", RTT: 0.002}
	srv, err := ServePage("127.0.0.1:0", f)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.(*pageServer).addr
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/")
	if resp.StatusCode != 200 || !strings.Contains(page, `<script src="uPlot.iife.min.js">`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("/: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}
	for _, name := range []string{"/uPlot.iife.min.js", "/uPlot.min.css", "/page.js"} {
		if resp, body := get(name); resp.StatusCode != 200 || len(body) < 1000 && name != "/uPlot.min.css" {
			t.Errorf("%s: %d, %d bytes", name, resp.StatusCode, len(body))
		}
	}
	if resp, _ := get("/vendor.sh"); resp.StatusCode != 404 {
		t.Errorf("/vendor.sh: %d, want 404 (only the page's files are served)", resp.StatusCode)
	}
	var st client.Status
	if _, body := get("/status.json"); json.Unmarshal([]byte(body), &st) != nil || st.Peer != "2001:db8:b::b" || st.Path.RTT != 0.002 {
		t.Errorf("/status.json: %s", body)
	}
	var cs map[string]uint64
	if _, body := get("/counters.json"); json.Unmarshal([]byte(body), &cs) != nil || cs["dl_tx_errors"] != 12 {
		t.Errorf("/counters.json: %s", body)
	}
	if resp, err := http.Post(base+"/status.json", "text/plain", strings.NewReader("x")); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp.StatusCode, err)
	}
	// A name, as a rebinding page elsewhere would send, is refused.
	req, _ := http.NewRequest("GET", base+"/status.json", nil)
	req.Host = "pwgate.example:8080"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host by name: %v %v", resp.StatusCode, err)
	}
	var h historyJSON
	if _, body := get("/history.json"); json.Unmarshal([]byte(body), &h) != nil || h.Every != 10 {
		t.Errorf("/history.json: %s", body)
	}
}

// TestPageHasNoOutsideReferences: the page and its script load nothing
// from elsewhere (no CDN): every URL they name is their own.
func TestPageHasNoOutsideReferences(t *testing.T) {
	for _, name := range []string{"web/index.html", "web/page.js"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(string(b)); m != "" {
			t.Errorf("%s names %s", name, m)
		}
	}
}

func TestHistory(t *testing.T) {
	var h history
	t0 := time.Unix(1700000000, 0)
	for i := range historyLen + 10 {
		var s stats.Snapshot
		s[stats.ULRxPackets] = uint64(i) * 1000 // 100 frames/s
		s[stats.ULRxBytes] = uint64(i) * 1000 * 100
		if i > 300 {
			s[stats.ULDropWrongPeer] = uint64(i-300) * 50 // 5/s
		}
		s[stats.ULLastBPDU] = uint64(t0.Add(time.Duration(i)*historyEvery - 2*time.Second).UnixNano())
		h.add(sample{t: t0.Add(time.Duration(i) * historyEvery), counters: s, rtt: -1, bgpUp: 2})
	}
	var j historyJSON
	if err := json.Unmarshal(h.served(), &j); err != nil {
		t.Fatal(err)
	}
	if len(h.samples) != historyLen || len(j.T) != historyLen-1 {
		t.Fatalf("%d samples, %d points: the history must stay bounded to an hour", len(h.samples), len(j.T))
	}
	last := len(j.T) - 1
	if j.Rates["ul_rx_frames"][last] != 100 || j.Rates["ul_rx_bits"][last] != 80000 || j.Drops["ul_drop_wrong_peer"][last] != 5 ||
		j.BPDU["ul"][last] != 2 || j.BPDU["dl"][last] != -1 || j.BGP[last] != 2 {
		t.Errorf("last point: rates %v drops %v bpdu %v %v bgp %v", j.Rates["ul_rx_frames"][last], j.Drops, j.BPDU["ul"][last], j.BPDU["dl"][last], j.BGP[last])
	}
	if _, ok := j.Drops["ul_drop_runt"]; ok || j.RTT != nil {
		t.Error("a reason that dropped nothing, or a round trip without keepalives, is graphed")
	}
}
