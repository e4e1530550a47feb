package xdpgen_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/bench/sink"
	"github.com/pwgate/pwgate/bench/xdpgen"
)

// TestGenerator sends test frames from one end of a veth pair to the
// other, where the bench's sink counts them: at a fixed rate every frame
// arrives, and at full speed most do (the receiving end runs out of room
// before the generator does).
func TestGenerator(t *testing.T) {
	if testing.Short() || !lab.IsRoot() {
		t.Skip("privileged test: needs root for namespaces and XDP, and not -short")
	}
	l := lab.New(fmt.Sprintf("pwg%d-", os.Getpid()))
	t.Cleanup(func() { l.Close() })
	if err := l.AddNS("x"); err != nil {
		t.Fatal(err)
	}
	if err := l.Veth("x", "va", "x", "vb", 0); err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 64)
	copy(frame, []byte{2, 0xbb, 0, 0, 0, 2, 2, 0xaa, 0, 0, 0, 1, 0x88, 0xb5})
	err := l.Do("x", func() error {
		tx, err := sink.Attach("va") // the sending end needs an XDP program for XDP_TX
		if err != nil {
			return err
		}
		defer tx.Close()
		rx, err := sink.Attach("vb")
		if err != nil {
			return err
		}
		defer rx.Close()
		g, err := xdpgen.Open("va", xdpgen.Options{Packets: [][]byte{frame}, Flows: 1000, Fields: []xdpgen.Field{{Off: 10, Base: 0x100}}})
		if err != nil {
			return err
		}
		defer g.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		sent, err := g.Run(ctx, 100_000)
		cancel()
		if err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		got, _ := rx.Read(sink.Plain)
		if sent < 20_000 || sent > 40_000 || got.Frames != sent {
			return fmt.Errorf("at 100 kframes/s for 0.3 s: sent %d, %d arrived", sent, got.Frames)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
		sent2, err := g.Run(ctx, 0)
		cancel()
		if err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		got2, _ := rx.Read(sink.Plain)
		t.Logf("full speed: %.0f kframes/s sent, %.0f%% arrived", float64(sent2)/300, 100*float64(got2.Frames-got.Frames)/float64(sent2))
		if got2.Frames-got.Frames < sent2/4 {
			return fmt.Errorf("full speed: %d sent, %d arrived", sent2, got2.Frames-got.Frames)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
