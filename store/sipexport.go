package store

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// A recording's SIP messages go into its export bundle twice: as text a
// reader can follow (sip.txt) and as a capture file Wireshark opens
// (sip.pcap). The capture keeps only the messages, not the packets they
// came in (those are gone after capture), so each message is put into
// synthesised packets: LINKTYPE_RAW (an IPv4 or IPv6 header first), then
// UDP, or TCP with sequence numbers that run on per direction, so
// Wireshark's reassembly shows each message whole. Checksums are computed,
// so nothing is flagged as damaged.

// sipSegment is the most SIP bytes one synthesised packet carries: well
// under an IP packet's 65,535 bytes.
const sipSegment = 60000

// writeSignalText writes messages as text: a line with the time, the
// transport and the addresses, then the message as it was, then a blank
// line.
func writeSignalText(w io.Writer, msgs []SignalMessage) error {
	for i, m := range msgs {
		if _, err := fmt.Fprintf(w, "#%d %s %s %s -> %s (%d bytes)\n", i+1, m.At.UTC().Format(time.RFC3339Nano),
			m.Transport, m.Src, m.Dst, len(m.Raw)); err != nil {
			return err
		}
		if _, err := w.Write(m.Raw); err != nil {
			return err
		}
		end := "\n"
		if len(m.Raw) > 0 && m.Raw[len(m.Raw)-1] != '\n' {
			end = "\n\n"
		}
		if _, err := io.WriteString(w, end); err != nil {
			return err
		}
	}
	return nil
}

// writeSignalPcap writes messages as a pcap of synthesised packets.
func writeSignalPcap(w io.Writer, msgs []SignalMessage) error {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		return err
	}
	type flow struct{ src, dst string }
	seq := map[flow]uint32{} // next TCP sequence number per direction
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	for i, m := range msgs {
		src, dst := m.Src.Addr().Unmap(), m.Dst.Addr().Unmap()
		if src.Is4() != dst.Is4() {
			// One IPv4 and one IPv6 end cannot share a header; map the
			// IPv4 one into IPv6 so the packet still shows both.
			src, dst = m.Src.Addr(), m.Dst.Addr()
			if src.Is4() {
				src = netip.AddrFrom16(src.As16())
			}
			if dst.Is4() {
				dst = netip.AddrFrom16(dst.As16())
			}
		}
		for off := 0; off == 0 || off < len(m.Raw); off += sipSegment {
			part := m.Raw[off:min(off+sipSegment, len(m.Raw))]
			var network gopacket.NetworkLayer
			var ls []gopacket.SerializableLayer
			if src.Is4() {
				ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice()), Id: uint16(i)}
				network = ip
				ls = append(ls, ip)
			} else {
				ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
				network = ip
				ls = append(ls, ip)
			}
			switch m.Transport {
			case "tcp":
				setProto(network, layers.IPProtocolTCP)
				f := flow{m.Src.String(), m.Dst.String()}
				s, ok := seq[f]
				if !ok {
					s = 1
				}
				tcp := &layers.TCP{SrcPort: layers.TCPPort(m.Src.Port()), DstPort: layers.TCPPort(m.Dst.Port()),
					Seq: s, ACK: true, PSH: true, Window: 65535}
				if a, ok := seq[flow{f.dst, f.src}]; ok {
					tcp.Ack = a
				}
				if err := tcp.SetNetworkLayerForChecksum(network); err != nil {
					return err
				}
				seq[f] = s + uint32(len(part))
				ls = append(ls, tcp)
			default:
				setProto(network, layers.IPProtocolUDP)
				udp := &layers.UDP{SrcPort: layers.UDPPort(m.Src.Port()), DstPort: layers.UDPPort(m.Dst.Port())}
				if err := udp.SetNetworkLayerForChecksum(network); err != nil {
					return err
				}
				ls = append(ls, udp)
			}
			ls = append(ls, gopacket.Payload(part))
			if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
				return fmt.Errorf("message %d: %w", i+1, err)
			}
			data := buf.Bytes()
			ci := gopacket.CaptureInfo{Timestamp: m.At, CaptureLength: len(data), Length: len(data)}
			if err := pw.WritePacket(ci, data); err != nil {
				return err
			}
			if m.Transport != "tcp" {
				break // UDP: one datagram, even a large one (cut at sipSegment)
			}
		}
	}
	return nil
}

func setProto(l gopacket.NetworkLayer, p layers.IPProtocol) {
	switch ip := l.(type) {
	case *layers.IPv4:
		ip.Protocol = p
	case *layers.IPv6:
		ip.NextHeader = p
	}
}
