package store

import "io"

// ReadFrom reads src to its end into the recording, straight into the
// encrypting writer's chunk buffer (recfile.Writer.ReadFrom): an upload's
// bytes go from the socket to the cipher without another copy.
//
// Only for a recording the once-a-second flusher leaves alone (Bulk or
// Unflushed): it holds the recording for the whole read, which for a slow
// client may be minutes, and the flusher must not wait behind it. Any
// other recording is read through a buffer and Write, as io.Copy would.
//
// A read error of src comes back as src returned it; a store error is
// classified as Write's are, and the recording is unusable after it. So
// the caller can tell a client that went away from a failing disk.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if !r.unflushed {
		return io.Copy(struct{ io.Writer }{r}, src)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.writable(); err != nil {
		return 0, err
	}
	// src's errors are returned through a wrapper that keeps them, so they
	// are told from the writer's, which recfile makes sticky.
	kr := &keptErrReader{r: src}
	n, err := r.w.ReadFrom(kr)
	if err != nil && kr.err != nil {
		r.s.stats.BytesWritten.Add(n)
		return n, err
	}
	return n, r.wrote(n, err)
}

// keptErrReader remembers the error its reader returned, other than io.EOF.
type keptErrReader struct {
	r   io.Reader
	err error
}

func (k *keptErrReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	if err != nil && err != io.EOF {
		k.err = err
	}
	return n, err
}
