package capture

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/gopacket/gopacket/pcapgo"
)

// ImportFile feeds every frame of a pcap or pcapng file to r. Classic pcap
// files are read in 256 KiB blocks and handed out in place, a few frames
// ahead of the one being handled (importPcap); pcapng and gzipped files go
// through gopacket's readers, into one reused buffer
// (ZeroCopyReadPacketData). Reading allocates nothing per packet.
func ImportFile(ctx context.Context, r *Reader, path string) (frames int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrSource, err)
	}
	defer f.Close()
	return ImportStream(ctx, r, path, f)
}

// ImportStream is ImportFile on a capture read as a stream (an upload to
// a running appliance: it is never spooled to disk, since it holds audio
// in the clear); name is for error messages.
func ImportStream(ctx context.Context, r *Reader, name string, src io.Reader) (frames int64, err error) {
	path := name
	// Small: the classic pcap reader reads whole blocks, which a
	// bufio.Reader hands straight to src only when they are at least its
	// own size (a larger one copied every block twice); gopacket's readers
	// for the other formats make small reads, which 64 KiB serves well.
	br := bufio.NewReaderSize(src, 64<<10)
	magic, err := br.Peek(4)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: not a capture file: %w", ErrSource, path, err)
	}
	switch binary.LittleEndian.Uint32(magic) {
	case 0xa1b2c3d4, 0xa1b23c4d, 0xd4c3b2a1, 0x4d3cb2a1:
		pr, err := newPcapReader(br)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrSource, path, err)
		}
		return importPcap(ctx, r, pr, path)
	}
	var read func() ([]byte, time.Time, error)
	var link packet.LinkType
	if magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{SkipUnknownVersion: true})
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrSource, path, err)
		}
		link = packet.LinkType(ng.LinkType())
		read = func() ([]byte, time.Time, error) {
			data, ci, err := ng.ZeroCopyReadPacketData()
			if err == nil && ci.InterfaceIndex >= 0 && ci.InterfaceIndex < ng.NInterfaces() {
				if iface, ierr := ng.Interface(ci.InterfaceIndex); ierr == nil {
					link = packet.LinkType(iface.LinkType)
				}
			}
			return data, ci.Timestamp, err
		}
	} else if magic[0] != 0x1f || magic[1] != 0x8b {
		return 0, fmt.Errorf("%w: %s: not a pcap or pcapng file (it starts with % x)", ErrSource, path, magic)
	} else {
		// gzip: pcapgo's reader unpacks it.
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrSource, path, err)
		}
		link = packet.LinkType(pr.LinkType())
		read = func() ([]byte, time.Time, error) {
			data, ci, err := pr.ZeroCopyReadPacketData()
			return data, ci.Timestamp, err
		}
	}
	for {
		if frames%4096 == 0 && ctx.Err() != nil {
			return frames, ctx.Err()
		}
		data, ts, err := read()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			// A capture cut off mid-packet (a tcpdump killed hard) still
			// imports up to there.
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return frames, fmt.Errorf("%w: %s: after frame %d", ErrTruncated, path, frames)
			}
			return frames, fmt.Errorf("%w: %s: frame %d: %w", ErrSource, path, frames+1, err)
		}
		frames++
		r.Handle(link, ts, data)
	}
}

// frameAhead is a frame read but not handled yet.
type frameAhead struct {
	data []byte
	ts   time.Time
	a    ahead
}

// lookahead is how many frames importPcap reads ahead of the one it hands
// to the reader: the reader prefetches a frame's flow cache entry when it
// is read, the stream and ring that entry names lookahead/2 frames before
// it is handled, and the ring's next slot two frames before (flowcache.go).
// A frame takes about a microsecond, each prefetch a fraction of one.
const lookahead = 8

// importPcap feeds r the frames of a classic pcap file, prefetching for
// each a few frames before handling it.
func importPcap(ctx context.Context, r *Reader, pr *pcapReader, path string) (frames int64, err error) {
	var win [lookahead]frameAhead
	head, n := 0, 0
	var bad error // a bad record: the frames before it are handled first
	for {
		for n < lookahead && bad == nil {
			data, ts, ok, err := pr.next()
			if err != nil {
				bad = err
				break
			}
			if !ok {
				break
			}
			win[(head+n)%lookahead] = frameAhead{data: data, ts: ts, a: r.prefetchEntry(pr.link, data)}
			n++
		}
		if n == 0 {
			if bad != nil {
				return frames, fmt.Errorf("%w: %s: %w", ErrSource, path, bad)
			}
			switch err := pr.fill(0); {
			case errors.Is(err, io.EOF):
				return frames, nil
			case errors.Is(err, io.ErrUnexpectedEOF):
				// A capture cut off mid-packet (a tcpdump killed hard) still
				// imports up to there.
				return frames, fmt.Errorf("%w: %s: after frame %d", ErrTruncated, path, frames)
			case err != nil:
				return frames, fmt.Errorf("%w: %s: frame %d: %w", ErrSource, path, frames+1, err)
			}
			continue
		}
		if n > lookahead/2 {
			r.prefetchStream(win[(head+lookahead/2)%lookahead].a)
		}
		if n > 2 {
			r.prefetchSlot(win[(head+2)%lookahead].a)
		}
		f := &win[head]
		head, n = (head+1)%lookahead, n-1
		if frames%4096 == 0 && ctx.Err() != nil {
			return frames, ctx.Err()
		}
		frames++
		r.Handle(pr.link, f.ts, f.data)
	}
}
