//go:build cgo && !nolame

package audio

/*
#cgo LDFLAGS: -lmp3lame
#include <lame/lame.h>
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"io"
	"unsafe"
)

// mp3EncodeFrames is how many frames one lame_encode call gets; the output
// buffer is sized by LAME's documented worst case 1.25*n + 7200.
const mp3EncodeFrames = 4608

// MP3Encoder streams interleaved 16-bit PCM into constant-bit-rate MP3
// written to an io.Writer. It owns C memory: always Close it.
type MP3Encoder struct {
	gf       C.lame_t
	w        io.Writer
	channels int
	out      []byte
	err      error
}

// NewMP3Encoder returns an encoder for rate Hz input (8000..48000, one of
// the MPEG rates; the MP3 itself has MP3OutputRate(rate)) and 1 or 2 channels at kbps kbit/s CBR (0: DefaultMP3Kbps).
func NewMP3Encoder(w io.Writer, rate, channels, kbps int) (*MP3Encoder, error) {
	switch rate {
	case 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000:
	default:
		return nil, fmt.Errorf("%w: MP3 at %d Hz", ErrBadArgument, rate)
	}
	if channels != 1 && channels != 2 {
		return nil, fmt.Errorf("%w: MP3 with %d channels", ErrBadArgument, channels)
	}
	if kbps == 0 {
		kbps = DefaultMP3Kbps(rate, channels)
	}
	if kbps < 8 || kbps > 320 {
		return nil, fmt.Errorf("%w: MP3 at %d kbit/s", ErrBadArgument, kbps)
	}
	gf := C.lame_init()
	if gf == nil {
		return nil, fmt.Errorf("audio: lame_init failed")
	}
	C.lame_set_in_samplerate(gf, C.int(rate))
	// Below 16 kHz MP3 needs MPEG-2.5, an unofficial extension that some
	// players (and go-mp3) do not decode; let LAME resample to 16 kHz
	// (MPEG-2) instead. Everything else is encoded at its own rate.
	C.lame_set_out_samplerate(gf, C.int(MP3OutputRate(rate)))
	C.lame_set_num_channels(gf, C.int(channels))
	var mode C.MPEG_mode = C.JOINT_STEREO
	if channels == 1 {
		mode = C.MONO
	}
	C.lame_set_mode(gf, mode)
	C.lame_set_VBR(gf, C.vbr_off)
	C.lame_set_brate(gf, C.int(kbps))
	C.lame_set_quality(gf, 5)
	// No bit reservoir: every frame then carries its own data and is
	// exactly as long as the bit rate says, so MP3 output can be made in
	// independent segments that a byte range maps onto (mp3seg.go). At
	// speech bit rates the reservoir's gain is small.
	C.lame_set_disable_reservoir(gf, 1)
	// No Xing/LAME info frame: it would have to be rewritten at the start of
	// the stream after encoding, which a streaming writer cannot do.
	C.lame_set_bWriteVbrTag(gf, 0)
	if rc := C.lame_init_params(gf); rc < 0 {
		C.lame_close(gf)
		return nil, fmt.Errorf("%w: LAME rejects %d Hz, %d channels, %d kbit/s (code %d)", ErrBadArgument, rate, channels, kbps, int(rc))
	}
	return &MP3Encoder{gf: gf, w: w, channels: channels, out: make([]byte, mp3EncodeFrames*5/4+7200)}, nil
}

// Write encodes interleaved samples (a whole number of frames) and writes
// whatever MP3 bytes LAME has ready.
func (e *MP3Encoder) Write(pcm []int16) error {
	if e.err != nil {
		return e.err
	}
	if e.gf == nil {
		return fmt.Errorf("%w: write after Close", ErrBadArgument)
	}
	if len(pcm)%e.channels != 0 {
		return fmt.Errorf("%w: %d samples is not a whole number of %d-channel frames", ErrBadArgument, len(pcm), e.channels)
	}
	for len(pcm) > 0 {
		frames := min(len(pcm)/e.channels, mp3EncodeFrames)
		in := (*C.short)(unsafe.Pointer(&pcm[0]))
		out := (*C.uchar)(unsafe.Pointer(&e.out[0]))
		var n C.int
		if e.channels == 1 {
			n = C.lame_encode_buffer(e.gf, in, in, C.int(frames), out, C.int(len(e.out)))
		} else {
			n = C.lame_encode_buffer_interleaved(e.gf, in, C.int(frames), out, C.int(len(e.out)))
		}
		if n < 0 {
			e.err = fmt.Errorf("audio: LAME encode failed with code %d", int(n))
			return e.err
		}
		if err := e.emit(int(n)); err != nil {
			return err
		}
		pcm = pcm[frames*e.channels:]
	}
	return nil
}

func (e *MP3Encoder) emit(n int) error {
	if n == 0 {
		return nil
	}
	if _, err := e.w.Write(e.out[:n]); err != nil {
		e.err = fmt.Errorf("audio: writing MP3: %w", err)
		return e.err
	}
	return nil
}

// Close flushes the last frames (LAME holds back up to ~1 frame plus its
// look-ahead) and frees the encoder. It is safe to call twice.
func (e *MP3Encoder) Close() error {
	if e.gf == nil {
		return e.err
	}
	var err error
	if e.err == nil {
		n := C.lame_encode_flush(e.gf, (*C.uchar)(unsafe.Pointer(&e.out[0])), C.int(len(e.out)))
		if n < 0 {
			err = fmt.Errorf("audio: LAME flush failed with code %d", int(n))
		} else {
			err = e.emit(int(n))
		}
	}
	C.lame_close(e.gf)
	e.gf = nil
	if err != nil {
		e.err = err
	}
	return e.err
}
