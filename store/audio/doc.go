// Package audio decodes, stores and renders call audio.
//
// It owns three things:
//
//   - codecs: G.711 µ-law/A-law (table driven, bit-exact with G.711 as sox
//     and Wireshark implement it), G.722 at 64 kbit/s written from the
//     Recommendation (bit-exact with ffmpeg on a real call), and RFC 3551 L16.
//     Every codec call works on caller-owned buffers and does not allocate,
//     because capture and rendering run them per packet / per 20 ms.
//   - containers: uploaded WAV and MP3 files as they came, and our own "grid"
//     container for captured calls (see GridWriter).
//   - rendering: any of those, read through an io.ReaderAt (the decrypted
//     view of a recording file), to PCM16, WAV or MP3 for a browser, seekable
//     by time and streamed in small pieces.
//
// Nothing here holds a whole recording in memory: readers work on
// io.ReaderAt + size and keep only a few ticks of state.
package audio
