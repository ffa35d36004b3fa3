package store

import (
	"context"
	"fmt"
	"io"

	"github.com/callvault/callvault/store/audio"
)

// Source parses the recording inside the decrypted file (our grid
// container, or an upload's WAV or MP3) for rendering.
func (a *Audio) Source() (*audio.Source, error) {
	src, err := audio.Open(a, a.Size())
	if err != nil {
		return nil, fmt.Errorf("recording %s: %w", a.Rec.ID, err)
	}
	return src, nil
}

// Render streams a recording as o asks (WAV, MP3 or PCM; stereo with the
// local party left, or mono; from any start time), decrypting only the
// chunks it needs as it goes.
func (s *Store) Render(ctx context.Context, id string, w io.Writer, o audio.RenderOptions) error {
	a, err := s.OpenAudio(ctx, id)
	if err != nil {
		return err
	}
	defer a.Close()
	src, err := a.Source()
	if err != nil {
		return err
	}
	return src.Render(ctx, w, o)
}

// gridDuration reads the duration of a grid recording from its file (the
// tick count times the tick length), for recordings whose producer died
// before it could say.
func (s *Store) gridDuration(ctx context.Context, id string) (int64, bool) {
	a, err := s.OpenAudio(ctx, id)
	if err != nil {
		return 0, false
	}
	defer a.Close()
	g, err := audio.NewGridReader(a, a.Size())
	if err != nil {
		return 0, false
	}
	return g.Duration().Milliseconds(), true
}
