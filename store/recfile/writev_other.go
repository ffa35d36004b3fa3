//go:build !linux

package recfile

import "os"

// chunkWriter writes a run of sealed chunks, one write per chunk where
// there is no writev wrapper of ours.
type chunkWriter struct{ f *os.File }

func newChunkWriter(f *os.File, max int) (*chunkWriter, error) { return &chunkWriter{f: f}, nil }

func (cw *chunkWriter) write(bufs [][]byte) (int64, error) {
	var total int64
	for _, b := range bufs {
		n, err := cw.f.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
