#!/bin/sh
# Dev-only: regenerates testdata/corpus from the shared corpus with tshark.
# The tests never run this; they read the committed files, so a fresh clone
# needs neither tshark nor /work/shared.
#
#   udp/<capture>-f<frame>.sip     the UDP payload of each SIP frame (IPv4
#                                  fragments reassembled by tshark)
#   tcp/<capture>-s<stream>-p<port>.bin  one direction of a TCP stream, as
#                                  sent from source port <port>
#   golden/<capture>.tsv           what tshark decodes for each SIP message
set -eu
CORPUS=${CORPUS:-/work/shared/corpus/pcaps}
OUT=$(dirname "$0")/corpus
rm -rf "$OUT"; mkdir -p "$OUT/udp" "$OUT/tcp" "$OUT/golden"
# Permissively licensed captures only (see MANIFEST.md).
CAPS="wireshark-samples/SIP_DTMF2 wireshark-samples/aaa wireshark-samples/sip-rtp-g722
wireshark-samples/sip-rtp-g726 wireshark-samples/sip-rtp-opus nextcaller/sip-i nextcaller/sip-tcp
suricata-verify/sip-body-large"
for c in $CAPS; do
	name=$(basename "$c")
	pcap="$CORPUS/$c.pcap"
	tshark -r "$pcap" -Y 'sip && udp' -T fields -e frame.number -e udp.payload 2>/dev/null |
	while read -r frame hex; do
		printf '%s' "$hex" | xxd -r -p > "$OUT/udp/$name-f$frame.sip"
	done
	for s in $(tshark -r "$pcap" -Y 'sip && tcp' -T fields -e tcp.stream 2>/dev/null | sort -un); do
		tshark -r "$pcap" -q -z "follow,tcp,raw,$s" 2>/dev/null > "$OUT/tcp/.follow"
		p0=$(sed -n 's/^Node 0: .*:\([0-9]*\)$/\1/p' "$OUT/tcp/.follow")
		p1=$(sed -n 's/^Node 1: .*:\([0-9]*\)$/\1/p' "$OUT/tcp/.follow")
		awk '/^[0-9a-f]+$/' "$OUT/tcp/.follow" | tr -d '\n' | xxd -r -p > "$OUT/tcp/$name-s$s-p$p0.bin"
		awk '/^\t[0-9a-f]+$/ { sub(/^\t/, ""); print }' "$OUT/tcp/.follow" | tr -d '\n' | xxd -r -p > "$OUT/tcp/$name-s$s-p$p1.bin"
		rm -f "$OUT/tcp/.follow"
	done
	# One line per SIP message. Fields tshark repeats for several messages in
	# one frame are joined with '|' (none in these captures, the test checks).
	tshark -r "$pcap" -Y sip -T fields -E aggregator='|' \
		-e frame.number -e udp.srcport -e tcp.stream -e tcp.srcport \
		-e sip.Method -e sip.Status-Code -e sip.Call-ID -e sip.CSeq.seq -e sip.CSeq.method \
		-e sip.from.tag -e sip.to.tag -e sip.from.user -e sip.to.user 2>/dev/null > "$OUT/golden/$name.tsv"
done
find "$OUT/tcp" -size 0 -delete
