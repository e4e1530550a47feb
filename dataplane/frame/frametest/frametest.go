// Package frametest gives tests the frames captured from the reference
// implementation (WIRE.md; the captures and what they hold are in
// reference/, embedded, so that tests need nothing outside the repository)
// and reads pcap files of their own.
package frametest

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

//go:embed reference/*.pcap
var reference embed.FS

// Reference reads one capture of the reference implementation, for example
// Reference(t, "eth-a-ul-out"), and returns its frames in order.
func Reference(tb testing.TB, name string) [][]byte {
	tb.Helper()
	b, err := reference.ReadFile("reference/" + name + ".pcap")
	if err != nil {
		tb.Fatalf("reference capture %s: %v", name, err)
	}
	frames, err := readPcap(name, bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	return frames
}

// ReadPcap returns the frames of a classic pcap file with Ethernet link type.
func ReadPcap(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readPcap(path, f)
}

func readPcap(name string, in io.Reader) ([][]byte, error) {
	r, err := pcapgo.NewReader(in)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("read %s: link type %v, want Ethernet", name, r.LinkType())
	}
	var frames [][]byte
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if ci.CaptureLength != ci.Length {
			return nil, fmt.Errorf("read %s: frame %d truncated by the capture", name, len(frames)+1)
		}
		frames = append(frames, data)
	}
}
