package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/callvault/callvault/capture/packet"
	"github.com/gopacket/gopacket/pcapgo"
)

// ImportFile feeds every frame of a pcap or pcapng file to r. Frames are
// read into one reused buffer (ZeroCopyReadPacketData), so reading does not
// allocate per packet either.
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
	br := bufio.NewReaderSize(src, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: not a capture file: %w", ErrSource, path, err)
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
	} else {
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
				return frames, nil
			}
			return frames, fmt.Errorf("%w: %s: frame %d: %w", ErrSource, path, frames+1, err)
		}
		frames++
		r.Handle(link, ts, data)
	}
}
