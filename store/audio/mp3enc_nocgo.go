//go:build !cgo || nolame

package audio

import "io"

// MP3Encoder is unavailable without cgo; see mp3enc_cgo.go.
type MP3Encoder struct{}

// NewMP3Encoder always fails with ErrMP3Unavailable in builds without cgo.
func NewMP3Encoder(w io.Writer, rate, channels, kbps int) (*MP3Encoder, error) {
	return nil, ErrMP3Unavailable
}

// Write always fails with ErrMP3Unavailable.
func (e *MP3Encoder) Write(pcm []int16) error { return ErrMP3Unavailable }

// Close always fails with ErrMP3Unavailable.
func (e *MP3Encoder) Close() error { return ErrMP3Unavailable }
