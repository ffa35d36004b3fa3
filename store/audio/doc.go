// Package audio decodes, stores and renders call audio.
//
// It owns three things:
//
//   - Codecs: G.711 µ-law/A-law (table driven, bit-exact with G.711 as sox
//     and Wireshark implement it), G.722 at 64 kbit/s written from the
//     Recommendation (bit-exact with ffmpeg on a real call), and RFC 3551
//     L16. Codec calls work on caller-owned buffers and never allocate,
//     because capture and rendering run them per packet / per tick.
//   - Containers: uploaded WAV (WAVReader) and MP3 (MP3Reader) files as they
//     came, and our own grid container for captured calls (GridWriter,
//     GridReader; the layout is drawn in grid.go). The grid keeps every
//     channel on a fixed time grid of ticks (20 ms by default), so time →
//     byte offset is arithmetic and a seek in a one-hour call is one
//     ReadAt; gaps are stored as flagged codec silence so the timeline stays
//     true and the evidence shows what was really received.
//   - Rendering: Open recognises a recording (grid, WAV or MP3) read through
//     an io.ReaderAt (the decrypted view that store/recfile gives) and
//     Source.Render streams it as PCM16, WAV or MP3 (LAME through cgo),
//     stereo (local party left, remote right) or a saturating mono mix, at
//     8 kHz, or 16 kHz when a channel is wideband, with a 2x half-band FIR
//     resampler. Render starts at any time, cuts any byte range (HTTP
//     Range), and writes 20 ms first and then 100 ms pieces, so the first
//     byte leaves after one tick's work. RenderedSize gives exact
//     PCM16/WAV sizes before rendering.
//
// Memory is bounded by the piece size, never by the recording's length.
// Inputs from outside (uploads, files on disk) are parsed defensively: bad
// input gets a wrapped sentinel error from errors.go, never a panic; every
// parser has a fuzz target (FuzzWAV, FuzzMP3, FuzzGrid).
//
// Why these choices:
//
//   - The grid stores codec bytes, not PCM: it is the original evidence and
//     4x smaller than 16-bit PCM for G.711. Decoding happens on read.
//   - G.722 is ADPCM, so a seek decodes 200 ms before the target to let the
//     predictor converge; G.711, L16 and the resampler need only one tick
//     and give byte-identical results for any start or range.
//   - MP3 output below 16 kHz is raised to 16 kHz (MPEG-2) because MPEG-2.5
//     is not decoded everywhere; WAV output keeps the true rate.
//   - The LAME binding is the only cgo in the package; without cgo the
//     encoder returns ErrMP3Unavailable and everything else works.
package audio
