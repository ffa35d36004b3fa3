package webui

import "errors"

// Sentinel errors of the web UI. Functions wrap them with %w and add the
// numbers or the field that was wrong; callers test with errors.Is. The
// three upload errors map one to one onto the Imagicle API's reason codes.
var (
	// ErrBadHash is returned for a stored hash that is not an argon2id PHC string.
	ErrBadHash = errors.New("password hash is not argon2id")
	// ErrPasswordMismatch is returned when a password does not match its hash.
	ErrPasswordMismatch = errors.New("password does not match")
	// ErrWeakPassword is returned for a password too short to keep.
	ErrWeakPassword = errors.New("password too short")
	// ErrNoAccount is what Accounts returns for an unknown user name.
	ErrNoAccount = errors.New("no such account")

	// ErrInvalidData is upload reason 0 (InvalidData): no body, not
	// multipart, unparsable JSON, a missing part.
	ErrInvalidData = errors.New("invalid data")
	// ErrInvalidMetadata is upload reason 1 (InvalidRecordingMetadata): a
	// jsondata field is missing or wrong; the message names the field.
	ErrInvalidMetadata = errors.New("invalid recording metadata")
	// ErrInvalidAudio is upload reason 2 (InvalidRecordingAudioFile): an
	// unknown format, a corrupt file, or more than the size limit.
	ErrInvalidAudio = errors.New("invalid recording audio file")

	// ErrBadParameter is a query parameter the API cannot use (unknown,
	// repeated, malformed or out of range); the 400 answer names it.
	ErrBadParameter = errors.New("bad parameter")
)
