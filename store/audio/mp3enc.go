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
