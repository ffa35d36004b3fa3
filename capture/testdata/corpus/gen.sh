#!/bin/sh
# Remake the golden files from the captures with tshark (Debian's tshark 4.0):
#   <capture>.answered  distinct Call-IDs whose INVITE got a 2xx (the calls
#                       tshark's VoIP call analysis shows as answered)
#   <capture>.rtp       every RTP packet (heuristics on, so RTP without SIP
#                       is found too): src:port dst:port ssrc seq timestamp pt payload-hex
set -eu
cd "$(dirname "$0")"
mkdir -p golden
for f in *.pcap; do
  tshark -r "$f" -d tcp.port==5060,sip \
    -Y 'sip.CSeq.method == "INVITE" && sip.Status-Code >= 200 && sip.Status-Code < 300' \
    -T fields -e sip.Call-ID 2>/dev/null | sort -u | grep -c . > "golden/$f.answered" || true
  tshark -r "$f" -o rtp.heuristic_rtp:TRUE -Y 'rtp && !rtcp && !icmp' \
    -T fields -E separator=' ' -e ip.src -e udp.srcport -e ip.dst -e udp.dstport \
    -e rtp.ssrc -e rtp.seq -e rtp.timestamp -e rtp.p_type -e rtp.payload 2>/dev/null \
    | awk '{print $1":"$2, $3":"$4, $5, $6, $7, $8, $9}' > "golden/$f.rtp"
done
