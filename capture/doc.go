// Package capture turns packets and sessions into recordings: sources
// (AF_PACKET, pcap files, SIPREC, WebRTC), decoding, SIP dialogs and SDP,
// RTP demultiplexing into per-stream rings, flushers and recording policy.
// It writes through store and never knows bbolt, raft or HTTP (the
// import-graph test in package test enforces this).
package capture
