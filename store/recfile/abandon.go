package recfile

// Abandon closes the file without sealing or removing it, leaving it as a
// crash would. The store calls it after a failed write (a full disk) and
// then runs Recover on the path, which keeps every chunk that was written
// whole. It is a no-op after Close or Abort.
func (w *Writer) Abandon() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.pipe != nil {
		w.pipe.stop(false) // chunks already handed over reach the file, as without Pipelined
	}
	return w.f.Close()
}
