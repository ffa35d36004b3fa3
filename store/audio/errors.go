package audio

import "errors"

// Sentinel errors. Every error returned by this package wraps one of these
// with %w and adds the offending numbers, so callers test with errors.Is and
// operators still see what was wrong.
var (
	// ErrNotWAV: the input does not start with a RIFF/WAVE header.
	ErrNotWAV = errors.New("audio: not a RIFF/WAVE file")
	// ErrNotMP3: no MPEG audio frame could be found where one was expected.
	ErrNotMP3 = errors.New("audio: not an MP3 stream")
	// ErrNotGrid: the input does not start with the grid magic "CVGRID".
	ErrNotGrid = errors.New("audio: not a grid container")
	// ErrUnsupportedFormat: a well-formed file in a coding we do not decode
	// (WAV format code, bit depth, grid codec or version).
	ErrUnsupportedFormat = errors.New("audio: unsupported format")
	// ErrCorrupt: a structurally broken file (impossible sizes, missing
	// chunks, header fields that contradict each other, decoder failure).
	ErrCorrupt = errors.New("audio: corrupt data")
	// ErrBadArgument: a caller passed an impossible value (negative time,
	// buffer of the wrong size, unknown enum).
	ErrBadArgument = errors.New("audio: bad argument")
	// ErrMP3Unavailable: the binary was built without cgo, so the LAME MP3
	// encoder is not linked in. Decoding MP3 still works.
	ErrMP3Unavailable = errors.New("audio: MP3 encoding unavailable (built without cgo)")
	// ErrSizeUnknown: the output's size cannot be known before rendering
	// (MP3 at a rate whose frames vary in length), so it cannot be cut
	// into byte ranges.
	ErrSizeUnknown = errors.New("audio: output size not known in advance")
	// ErrUnknownSource: Open could not recognise the recording's content.
	ErrUnknownSource = errors.New("audio: unrecognised recording content")
)
