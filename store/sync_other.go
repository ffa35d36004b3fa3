//go:build !linux

package store

import "errors"

// syncHot has no one-call equivalent here: the flusher fsyncs file by file.
func (s *Store) syncHot() error { return errors.New("syncfs is Linux only") }
