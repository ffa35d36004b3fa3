// Package recfile reads and writes Callvault recording files: one encrypted,
// self-authenticating file per recording, appended during a live call and
// immutable once sealed (ARCHITECTURE.md, "Recording file").
//
// # Format
//
// All integers are big-endian. A file is a 48-byte header followed by chunks.
//
//	header (48 bytes)
//	 0                   6     7     8                                 24
//	+-------------------+-----+-----+---------------------------------+
//	| magic "CVREC\x00" | ver | 0   | recording ID (16 bytes, a UUID) |
//	+-------------------+-----+-----+---------------------------------+
//	24                  32               36                 40        44        48
//	+-------------------+----------------+------------------+---------+---------+
//	| key ID (8 bytes)  | nonce prefix 4 | chunk size (u32) | 0 (4)   | CRC-32C |
//	+-------------------+----------------+------------------+---------+---------+
//
//	chunk i (repeated until the end of the file)
//	+----------------------------+-----------------------------------------------+
//	| plaintext length L (u32)   | AES-256-GCM ciphertext (L bytes) + tag (16)   |
//	+----------------------------+-----------------------------------------------+
//	nonce = nonce prefix (4) | flags (1) | i (7 bytes)
//	AAD   = header (48)      | i (8)     | flags (1)
//	flags : 0x01 last chunk, 0x02 last chunk appended by Recover (always with 0x01)
//
// Why each field is there:
//
//   - The version is 2 for files written now, 1 for older ones. The layout
//     is the same; what the seal hash covers differs (seal.go): version 1
//     every byte of the file, version 2 the header and each chunk's length
//     and GCM tag, verified together with authenticating every chunk
//     (Verifier). Readers accept both.
//   - The key ID is the first 8 bytes of SHA-256("callvault/recfile/key-id/v1" ||
//     DEK). It lets a reader reject a wrong DEK (ErrWrongKey) before it decrypts
//     anything; it reveals nothing about a random 256-bit key.
//   - The nonce prefix is random per file. Every recording has its own DEK, so
//     the prefix only matters if a DEK were ever reused by mistake.
//   - The chunk size is the most plaintext one chunk may hold: 64 KiB for files
//     the store writes. Chunks may be shorter (Writer.Flush seals a partial
//     chunk every second during a live call), so readers locate chunks by
//     walking the length fields, not by arithmetic.
//   - The CRC-32C lets a reader report a damaged header as ErrCorrupt instead
//     of failing on chunk 0; security does not rest on it, because the whole
//     header is in every chunk's AAD.
//   - The chunk index and the last flag are in both the nonce and the AAD, and
//     the header (recording ID, nonce prefix) is in the AAD. So chunks cannot
//     be reordered, moved to another file, or cut off at a chunk boundary: the
//     final chunk must open with the last flag. Because the flag is part of the
//     nonce, the last chunk never shares a nonce with a non-last one, and the
//     chunk Recover appends (flags 0x03) never shares one with a chunk the
//     Writer may have half-written before a crash (flags 0x00 or 0x01).
//
// # Costs
//
// Each chunk costs 20 bytes (0.03 % at 64 KiB). Opening a file reads the
// header, then the 4-byte length field of every chunk (one small pread
// each; a one-hour G.711 call flushed every second has about 3,600 chunks,
// a few milliseconds), then decrypts the final chunk to learn whether the file
// is complete. ReadAt decrypts only the chunks it touches and caches the last
// one, so sequential playback decrypts each chunk once.
//
// # Pipelined writing
//
// For each 64 MiB a Writer does these things, measured on the appliance's
// two cores: copy the caller's bytes into the chunk buffer and seal them
// with AES-GCM (~35 ms), copy them into the page cache with write(2)
// (~25-30 ms), and fsync at Close, which writes the whole file to disk
// (~30-45 ms). Until format version 2 it also hashed every sealed byte
// with SHA-256 for the seal hash (~40 ms); version 2's seal hash takes 28
// bytes per chunk (seal.go). The synchronous Writer does them one after
// the other on the caller's goroutine.
//
// With the Pipelined option the Writer overlaps them. The caller's goroutine
// copies; a hasher goroutine feeds the PlainHash (when there is one), a
// sealer goroutine seals (and feeds the seal hash), a writer goroutine
// writes, each chunk in file order, so the bytes on disk and both hashes
// are exactly those of the synchronous Writer. (Until version 2 the
// sealer also fed the PlainHash and a fourth goroutine hashed the
// ciphertext; the history below is from then.) The writer also asks the kernel
// (sync_file_range on Linux) to start writing each MiB to disk as soon as it
// is in the page cache, so the fsync at Close finds little left to do.
// Sixteen chunk buffers circulate between the stages, and nothing is
// allocated per chunk. The writer gathers up to half of them (512 KiB of
// 64 KiB chunks) into one writev: a write(2) per chunk cost the kernel
// nearly twice the CPU of the same bytes in 512 KiB to 1 MiB writes
// (100 MB in 65,556-byte writes with the hint: 59-79 ms of CPU; in
// writevs of 16 such chunks: 35-43 ms), and took 15 % of an upload's CPU
// with it (BenchmarkUploadCPU100MB in the webui package).
//
// The split was chosen by measurement (an interleaved harness in the
// history of this package, and BenchmarkWrite64MiB and
// BenchmarkWrite64MiBInterleaved here). The writeback hint is the largest
// single gain: without it no split got past ~0.45x plain, because the final
// fsync stayed serial. With it, on a lightly loaded machine, three stages did
// best (~0.99x plain in the best run), ahead of the two-goroutine splits:
// hashing on the caller's goroutine (~0.86x; its caller, which copies, seals
// and hashes, is the bottleneck), hashing in the writer goroutine (~0.70x),
// or writing on the caller's goroutine and hashing in the other (~0.6x).
// Since the store began hashing the plaintext too (the audio hash an
// export proves against, fed through PlainHash), sealing moved off the
// caller onto a third goroutine, where that hash is fed before the chunk
// is encrypted in place: the caller only copies, and an uploader's
// goroutine, which also parses multipart, is no longer the bottleneck.
// Four buffers instead of sixteen lost a good part of the gain, since one
// slow write call then stalls the caller. On a machine whose other processes
// keep both cores busy, every split fell to ~0.55x: the Writer needs about
// 3.5 times the CPU of plain writes (~135 ms against ~38 ms per 64 MiB,
// about 25 ms more than the synchronous Writer, mostly the writeback calls),
// and overlap cannot make up for a core it does not get. Pipelined is
// therefore meant for bulk writes, not for live calls, which also should not
// pay its 1 MiB of buffers.
//
// # Crashes
//
// A file whose Writer never reached Close either ends after a non-last chunk
// (the writer died after a Flush) or inside a chunk (a torn write). Open
// reports both as ErrTruncated, unless it is given AllowTruncated, in which
// case the complete chunks before the tear are readable. Recover turns such a
// file into a complete one by cutting the torn tail and appending an empty
// last chunk. Recover is only for files that were never sealed: a sealed file
// has a seal hash in the metadata, and any later damage to it is a matter
// for evidence, not for repair. (A damaged length field can make a good chunk
// look torn; Recover would then cut it. RecoverResult reports what was cut.)
package recfile

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	// HeaderSize is the length of the file header.
	HeaderSize = 48
	// Version is the format version this package writes. It reads
	// versions 1 and 2, whose layout is the same; they differ in what the
	// seal hash covers (seal.go): version 1 every byte of the file,
	// version 2 the header and each chunk's framing and tag.
	Version = 2
	// DefaultChunkSize is the plaintext capacity of a chunk in files the
	// store writes.
	DefaultChunkSize = 64 << 10
	// MinChunkSize is the smallest chunk size Create accepts. Small chunks are
	// valid but wasteful (20 bytes each); tests use them to walk every byte
	// of a file with many chunks.
	MinChunkSize = 64
	// KeySize is the DEK size (AES-256).
	KeySize = 32
	// Overhead is the number of bytes a chunk adds to its plaintext.
	Overhead = lenSize + tagSize

	magic     = "CVREC\x00"
	lenSize   = 4
	tagSize   = 16
	nonceSize = 12
	aadSize   = HeaderSize + 8 + 1
	maxIndex  = 1<<56 - 1

	flagLast      = 0x01
	flagRecovered = 0x02

	keyIDLabel = "callvault/recfile/key-id/v1"

	// versionWholeFileSeal is the first format version, whose seal hash is
	// the SHA-256 of the whole file.
	versionWholeFileSeal = 1
)

// Errors returned by this package, wrapped with the chunk index, offsets or
// sizes involved; test for them with errors.Is.
var (
	// ErrNotRecording: the file does not start with the recording magic.
	ErrNotRecording = errors.New("recfile: not a recording file")
	// ErrVersion: the file has a format version this build cannot read.
	ErrVersion = errors.New("recfile: unsupported format version")
	// ErrWrongKey: the DEK does not match the key ID in the header.
	ErrWrongKey = errors.New("recfile: wrong data key")
	// ErrCorrupt: the header or a chunk was changed, reordered or moved from
	// another file (failed checksum, failed authentication, impossible length).
	ErrCorrupt = errors.New("recfile: corrupt recording")
	// ErrTruncated: the file ends without a last chunk or inside a chunk, as
	// a crash leaves it. See Recover and AllowTruncated.
	ErrTruncated = errors.New("recfile: truncated recording")
	// ErrKeySize: the DEK is not KeySize bytes.
	ErrKeySize = errors.New("recfile: data key has the wrong size")
	// ErrChunkSize: Create was asked for a chunk size outside
	// MinChunkSize..DefaultChunkSize.
	ErrChunkSize = errors.New("recfile: chunk size out of range")
	// ErrClosed: the Writer was already closed or aborted.
	ErrClosed = errors.New("recfile: writer closed")
	// ErrOffset: ReadAt was given a negative offset.
	ErrOffset = errors.New("recfile: negative offset")
)

// Header describes a recording file. Create takes RecordingID and ChunkSize
// from the caller and fills in the rest; Reader.Header returns what the file
// holds.
type Header struct {
	RecordingID [16]byte // the recording's UUID
	ChunkSize   int      // plaintext bytes per chunk; 0 means DefaultChunkSize
	Version     uint8    // format version
	KeyID       [8]byte  // KeyID of the DEK
	NoncePrefix [4]byte  // random per file
}

// KeyID identifies a DEK without revealing it. It is stored in the header
// so a wrong key is detected before decrypting.
func KeyID(dek []byte) [8]byte {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(dek)
	var sum [sha256.Size]byte
	var id [8]byte
	copy(id[:], h.Sum(sum[:0]))
	return id
}

func (h *Header) marshal() [HeaderSize]byte {
	var b [HeaderSize]byte
	copy(b[0:6], magic)
	b[6] = h.Version
	copy(b[8:24], h.RecordingID[:])
	copy(b[24:32], h.KeyID[:])
	copy(b[32:36], h.NoncePrefix[:])
	binary.BigEndian.PutUint32(b[36:40], uint32(h.ChunkSize))
	binary.BigEndian.PutUint32(b[44:48], crc32.Checksum(b[:44], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// parseHeader checks b (at least HeaderSize bytes) and dek against each other.
// The checks run from the cheapest and most telling to the last: magic,
// version, checksum, fields, key.
func parseHeader(b []byte, dek []byte) (Header, error) {
	var h Header
	if string(b[0:6]) != magic {
		return h, fmt.Errorf("%w: magic %q", ErrNotRecording, b[0:6])
	}
	if b[6] != Version && b[6] != versionWholeFileSeal {
		return h, fmt.Errorf("%w: version %d, this build reads %d and %d", ErrVersion, b[6], versionWholeFileSeal, Version)
	}
	want := binary.BigEndian.Uint32(b[44:48])
	if got := crc32.Checksum(b[:44], crc32.MakeTable(crc32.Castagnoli)); got != want {
		return h, fmt.Errorf("%w: header checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	h.Version = b[6]
	copy(h.RecordingID[:], b[8:24])
	copy(h.KeyID[:], b[24:32])
	copy(h.NoncePrefix[:], b[32:36])
	cs := binary.BigEndian.Uint32(b[36:40])
	if b[7] != 0 || binary.BigEndian.Uint32(b[40:44]) != 0 {
		return h, fmt.Errorf("%w: reserved header bytes are not zero", ErrCorrupt)
	}
	if cs < MinChunkSize || cs > DefaultChunkSize {
		return h, fmt.Errorf("%w: header chunk size %d, want %d..%d", ErrCorrupt, cs, MinChunkSize, DefaultChunkSize)
	}
	h.ChunkSize = int(cs)
	if len(dek) != KeySize {
		return h, fmt.Errorf("%w: %d bytes, want %d", ErrKeySize, len(dek), KeySize)
	}
	if id := KeyID(dek); id != h.KeyID {
		return h, fmt.Errorf("%w: key ID %x, file wants %x", ErrWrongKey, id, h.KeyID)
	}
	return h, nil
}

// chunkCipher holds the AEAD and the nonce and AAD buffers for one file, so
// sealing and opening a chunk allocate nothing.
type chunkCipher struct {
	aead  cipher.AEAD
	nonce [nonceSize]byte
	aad   [aadSize]byte
}

func newChunkCipher(dek []byte, header *[HeaderSize]byte) (*chunkCipher, error) {
	if len(dek) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrKeySize, len(dek), KeySize)
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, fmt.Errorf("recfile: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("recfile: %w", err)
	}
	c := &chunkCipher{aead: aead}
	copy(c.nonce[0:4], header[32:36])
	copy(c.aad[:HeaderSize], header[:])
	return c, nil
}

// set prepares nonce and AAD for chunk index with flags.
func (c *chunkCipher) set(index uint64, flags byte) {
	// The 7-byte index in the nonce is the low 7 bytes of the 8-byte form.
	binary.BigEndian.PutUint64(c.nonce[4:12], index)
	c.nonce[4] = flags
	binary.BigEndian.PutUint64(c.aad[HeaderSize:HeaderSize+8], index)
	c.aad[HeaderSize+8] = flags
}

// seal encrypts pt in place; the result (len(pt)+16 bytes) starts at pt[0].
func (c *chunkCipher) seal(pt []byte, index uint64, flags byte) []byte {
	c.set(index, flags)
	return c.aead.Seal(pt[:0], c.nonce[:], pt, c.aad[:])
}

// open decrypts ct into dst, which must not overlap ct. Not in place: GCM
// zeroes its output when authentication fails, and callers try the same
// ciphertext with more than one flags value.
func (c *chunkCipher) open(dst, ct []byte, index uint64, flags byte) ([]byte, error) {
	c.set(index, flags)
	return c.aead.Open(dst[:0], c.nonce[:], ct, c.aad[:])
}
