package meta

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Once and Batch carry other encoded commands. In JSON each level would
// base64 the level below and scan it again when decoding: the profile of
// a three-node cluster committing uploads spent a quarter of its CPU in
// encoding/json there. They have a binary framing of their own instead:
//
//	Once:  [37][key: 16 bytes][at: int64 unix ns, BE][the inner command]
//	Batch: [38][n: uint32 BE] n × ([len: uint32 BE][command])
//
// Both are deterministic (the same command, the same bytes), like JSON.

// framed is a command with its own wire form instead of JSON.
type framed interface {
	Command
	appendFrame(b []byte) ([]byte, error)
}

const onceHeader = onceKeyLen + 8

func (c *Once) appendFrame(b []byte) ([]byte, error) {
	key, err := hex.DecodeString(c.Key)
	if err != nil || len(key) != onceKeyLen {
		return nil, fmt.Errorf("%w: once key %q is not %d bytes of hex", ErrInvalid, c.Key, onceKeyLen)
	}
	var ns int64
	if !c.At.IsZero() {
		ns = c.At.UnixNano()
	}
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, uint64(ns))
	return append(b, c.Cmd...), nil
}

// DecodeOnce decodes an encoded Once (with its type byte).
func DecodeOnce(cmd []byte) (Once, error) {
	if len(cmd) < 1 || CommandType(cmd[0]) != TypeOnce {
		return Once{}, fmt.Errorf("%w: not a once", ErrMalformed)
	}
	return decodeOnce(cmd[1:])
}

func decodeOnce(p []byte) (Once, error) {
	if len(p) < onceHeader {
		return Once{}, fmt.Errorf("%w: once of %d bytes", ErrMalformed, len(p))
	}
	o := Once{Key: hex.EncodeToString(p[:onceKeyLen]), Cmd: p[onceHeader:]}
	if ns := int64(binary.BigEndian.Uint64(p[onceKeyLen:onceHeader])); ns != 0 {
		o.At = time.Unix(0, ns).UTC()
	}
	return o, nil
}

func (c *Batch) appendFrame(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Cmds)))
	for _, cmd := range c.Cmds {
		b = binary.BigEndian.AppendUint32(b, uint32(len(cmd)))
		b = append(b, cmd...)
	}
	return b, nil
}

// DecodeBatch decodes an encoded Batch (with its type byte). The inner
// commands share cmd's memory.
func DecodeBatch(cmd []byte) (Batch, error) {
	if len(cmd) < 1 || CommandType(cmd[0]) != TypeBatch {
		return Batch{}, fmt.Errorf("%w: not a batch", ErrMalformed)
	}
	return decodeBatch(cmd[1:])
}

func decodeBatch(p []byte) (Batch, error) {
	if len(p) < 4 {
		return Batch{}, fmt.Errorf("%w: batch of %d bytes", ErrMalformed, len(p))
	}
	n := binary.BigEndian.Uint32(p)
	p = p[4:]
	// Each command takes at least its 4-byte length: a count the bytes
	// cannot hold is refused before anything is allocated.
	if uint64(n)*4 > uint64(len(p)) {
		return Batch{}, fmt.Errorf("%w: batch claims %d commands in %d bytes", ErrMalformed, n, len(p))
	}
	b := Batch{Cmds: make([][]byte, n)}
	for i := range b.Cmds {
		if len(p) < 4 {
			return Batch{}, fmt.Errorf("%w: batch command %d of %d cut off", ErrMalformed, i, n)
		}
		l := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(l) > uint64(len(p)) {
			return Batch{}, fmt.Errorf("%w: batch command %d of %d claims %d bytes, %d left", ErrMalformed, i, n, l, len(p))
		}
		b.Cmds[i], p = p[:l:l], p[l:]
	}
	if len(p) != 0 {
		return Batch{}, fmt.Errorf("%w: %d bytes after the batch's %d commands", ErrMalformed, len(p), n)
	}
	return b, nil
}

// frameHandler decodes a framed command's payload and applies it.
func frameHandler[C any, P interface {
	*C
	applier
}](decode func([]byte) (C, error)) handler {
	return func(t *txn, payload []byte) (Result, error) {
		c, err := decode(payload)
		if err != nil {
			return Result{}, err
		}
		return P(&c).apply(t)
	}
}
