package store

import (
	"context"

	"github.com/callvault/callvault/store/audio"
)

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
