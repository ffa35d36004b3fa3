package audio

// MP3 encoding is a thin cgo binding to libmp3lame (LAME 3.100, Debian's
// libmp3lame-dev): no pure-Go MP3 encoder is available to us. The binding
// lives in mp3enc_cgo.go; mp3enc_nocgo.go keeps CGO_ENABLED=0 builds
// working and returns ErrMP3Unavailable.

// DefaultMP3Kbps is the constant bit rate used when NewMP3Encoder is given
// kbps = 0: 32 kbit/s per channel at 8 kHz (narrowband speech), 48 kbit/s
// per channel at 16 kHz and above (wideband speech).
func DefaultMP3Kbps(rate, channels int) int {
	if rate <= 8000 {
		return 32 * channels
	}
	return 48 * channels
}

// MP3OutputRate is the sample rate of the MP3 produced from PCM at rate:
// rates below 16 kHz are raised to 16 kHz, because below that MP3 needs the
// unofficial MPEG-2.5 extension which not every player decodes.
func MP3OutputRate(rate int) int {
	if rate < 16000 {
		return 16000
	}
	return rate
}

// mp3FrameLayout reports the bytes of every MP3 frame and the input frames
// (at rate) each one covers, for CBR MP3 made from PCM at rate, when both
// are constant: the MP3's rate divides the bit rate evenly, so no frame
// carries a padding byte, and a frame spans a whole number of input
// frames. That holds for the telephony rates (8, 12, 16, 24, 32 and 48 kHz
// at the default bit rates) and not for the 11.025/22.05/44.1 kHz family,
// whose frames alternate in length. ok is false then.
func mp3FrameLayout(rate, channels, kbps int) (frameBytes, inFrames int64, ok bool) {
	if kbps == 0 {
		kbps = DefaultMP3Kbps(rate, channels)
	}
	out := MP3OutputRate(rate)
	spf := 576 // MPEG-2 Layer III, up to 24 kHz
	if out >= 32000 {
		spf = 1152 // MPEG-1
	}
	bits := spf * kbps * 1000 // bits per frame times out
	if bits%(8*out) != 0 || spf*rate%out != 0 {
		return 0, 0, false
	}
	return int64(bits / (8 * out)), int64(spf * rate / out), true
}
