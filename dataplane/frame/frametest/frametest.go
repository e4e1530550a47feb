// Package frametest gives tests access to the captured reference frames in
// ../shared/vectors/reference (WIRE.md) and to pcap files of their own.
package frametest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// SharedEnv names the environment variable that overrides where the shared
// directory (ARCHITECTURE.md, WIRE.md, vectors/) is; by default it is
// ../shared next to the repository's root.
const SharedEnv = "PWGATE_SHARED"

// SharedDir returns the shared directory, failing the test with a clear
// message when it is missing: the vectors are part of the specification, so
// a test that needs them must not pass silently without them.
func SharedDir(tb testing.TB) string {
	tb.Helper()
	dir, err := sharedDir()
	if err != nil {
		tb.Fatalf("reference vectors: %v", err)
	}
	return dir
}

func sharedDir() (string, error) {
	if d := os.Getenv(SharedEnv); d != "" {
		return checkShared(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return checkShared(filepath.Join(filepath.Dir(d), "shared"))
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

func checkShared(d string) (string, error) {
	if _, err := os.Stat(filepath.Join(d, "vectors", "reference")); err != nil {
		return "", fmt.Errorf("%s/vectors/reference not found (set %s to the shared directory): %w", d, SharedEnv, err)
	}
	return d, nil
}

// Reference reads one capture of the reference implementation, for example
// Reference(t, "eth-a-ul-out"), and returns its frames in order.
func Reference(tb testing.TB, name string) [][]byte {
	tb.Helper()
	frames, err := ReadPcap(filepath.Join(SharedDir(tb), "vectors", "reference", name+".pcap"))
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
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("read %s: link type %v, want Ethernet", path, r.LinkType())
	}
	var frames [][]byte
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if ci.CaptureLength != ci.Length {
			return nil, fmt.Errorf("read %s: frame %d truncated by the capture", path, len(frames)+1)
		}
		frames = append(frames, data)
	}
}
