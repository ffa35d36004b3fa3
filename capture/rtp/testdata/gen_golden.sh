#!/bin/sh
# Regenerates the golden files from tshark (4.x). Run from capture/rtp:
#   sh testdata/gen_golden.sh
# The tests compare against the committed output and do not need tshark.
set -eu
cd "$(dirname "$0")"
TS="tshark -o rtp.heuristic_rtp:TRUE"

# Telephone events: one line per (ssrc, RTP timestamp) group in first-seen
# order: ssrc ts event max-duration end-seen.
events() {
	$TS -r "$1" -Y "rtpevent" -T fields -e rtp.ssrc -e rtp.timestamp -e rtpevent.event_id \
		-e rtpevent.duration -e rtpevent.end_of_event 2>/dev/null |
	awk '{k=$1" "$2; if(!(k in ev)){ord[n++]=k; ev[k]=$3; d[k]=0; e[k]=0}
	      if($4+0>d[k]) d[k]=$4+0; if($5=="1") e[k]=1}
	     END{for(i=0;i<n;i++){k=ord[i]; print k, ev[k], d[k], e[k]}}'
}
events dtmf.pcap > golden/dtmf.events
events SIP_DTMF2.pcap > golden/SIP_DTMF2.events

# Audio payloads of each stream: ssrc pt packets bytes sha256-of-payloads-
# concatenated-in-sequence-order.
payloads() {
	$TS -r "$1" -Y "rtp.p_type==$2 && !rtcp" -T fields -e rtp.ssrc -e rtp.seq -e rtp.payload 2>/dev/null |
	sort -k1,1 -k2,2n | awk -v pt="$2" '
	  {if($1!=cur){ if(cur!="") flush(); cur=$1; n=0; hex=""} n++; hex=hex $3}
	  function flush(){ gsub(":","",hex); printf "%s %s %d %s\n", cur, pt, n, hex }
	  END{flush()}' |
	while read -r ssrc pt n hex; do
		sum=$(printf '%s' "$hex" | xxd -r -p | sha256sum | cut -d' ' -f1)
		printf '%s %s %s %s %s\n' "$ssrc" "$pt" "$n" "$(( ${#hex} / 2 ))" "$sum"
	done
}
payloads SIP_DTMF2.pcap 8 > golden/SIP_DTMF2.payloads
