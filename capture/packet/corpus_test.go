package packet

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorpusDecodeAll decodes every frame of every capture in the shared
// developer corpus (including the copyleft ones, which are not copied into
// the repository) and, where tshark is installed, compares each frame's
// addresses, ports and payload length with tshark's dissection.
func TestCorpusDecodeAll(t *testing.T) {
	files := corpusFiles(t)
	_, errTshark := exec.LookPath("tshark")
	if errTshark != nil {
		t.Logf("tshark not installed: decoding only, no comparison")
	}
	for _, path := range files {
		rel, _ := filepath.Rel(corpusDir, path)
		t.Run(strings.ReplaceAll(rel, "/", "_"), func(t *testing.T) {
			link, frames := readCapture(t, path)
			d := &Decoder{Defrag: NewDefragmenter(DefragConfig{})}
			var p Packet
			kinds := map[string]int{}
			for i, f := range frames {
				switch err := d.Decode(link, f.ts, f.data, &p); {
				case err == nil:
					kinds["ok"]++
				case errors.Is(err, ErrUnsupported):
					kinds["unsupported"]++
				default:
					// Every corpus frame is a real, well-formed packet.
					t.Errorf("frame %d: %v", i+1, err)
				}
			}
			if kinds["ok"] == 0 {
				t.Fatalf("no frame decoded: %v", kinds)
			}
			t.Logf("link %d, %d frames: %v", link, len(frames), kinds)
			if errTshark != nil {
				return
			}
			want, err := tsharkSummary(path)
			if err != nil {
				t.Fatal(err)
			}
			compareLines(t, summary(t, path), want)
		})
	}
}
