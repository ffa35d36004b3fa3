package appliance

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/callvault/callvault/capture"
	"github.com/callvault/callvault/store"
	"github.com/prometheus/client_golang/prometheus"
)

// liveCapture is passive recording from the interfaces in
// capture.interfaces: an engine in live mode (its flusher on the wall
// clock) fed by an AF_PACKET source.
type liveCapture struct {
	engine *capture.Engine
	source *capture.LiveSource
	log    *slog.Logger
}

// startLive starts live capture when capture.interfaces is set (nil, nil
// when it is not). It needs the store open, and fails, leaving nothing
// running, if an interface cannot be opened: an appliance told to record
// an interface must not come up deaf.
func startLive(cfg Config, st *store.Store, reg prometheus.Registerer, log *slog.Logger) (*liveCapture, error) {
	if len(cfg.Capture.Interfaces) == 0 {
		return nil, nil
	}
	log = log.With("subsystem", "capture")
	cc := captureConfig(cfg, true)
	cc.Log = log
	e := capture.New(cc, capture.StoreSink(st))
	e.Start()
	src, err := capture.Live(context.Background(), e, capture.LiveConfig{
		Interfaces: cfg.Capture.Interfaces,
		BPF:        cfg.Capture.BPF,
	})
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("capture.interfaces %v: %w", cfg.Capture.Interfaces, err)
	}
	l := &liveCapture{engine: e, source: src, log: log}
	if err := registerCaptureMetrics(reg, e.Stats(), src.Interfaces()); err != nil {
		l.stop()
		return nil, err
	}
	log.Info("live capture started", "interfaces", cfg.Capture.Interfaces, "bpf", cfg.Capture.BPF != "")
	return l, nil
}

// stop ends capture in the order that loses nothing: the readers stop
// first, then the engine ends every open call and seals its recording;
// the store must still be open for that. Safe on nil.
func (l *liveCapture) stop() {
	if l == nil {
		return
	}
	_ = l.source.Close()
	l.engine.Close()
	s := l.engine.Stats()
	l.log.Info("live capture stopped", "packets", s.Packets.Load(), "rtp_packets", s.RTPPackets.Load(),
		"recordings", s.Recordings.Load(), "kernel_drops", s.KernelDrops.Load(), "ring_drops", s.RingDrops.Load())
}

// registerCaptureMetrics exports capture's counters, read at scrape time
// from the atomics the packet path updates (nothing is added per packet).
// The only label is the interface name, one series per configured
// interface.
func registerCaptureMetrics(reg prometheus.Registerer, s *capture.Stats, ifaces []*capture.LiveInterfaceStats) error {
	counter, gauge := counterFunc, gaugeFunc
	seconds := func(f func() int64) func() float64 { return func() float64 { return float64(f()) / 1e9 } }
	cs := []prometheus.Collector{
		counter("callvault_capture_packets_total", "Frames handed to capture.", s.Packets.Load),
		counter("callvault_capture_bytes_total", "Bytes of the frames handed to capture.", s.Bytes.Load),
		counter("callvault_capture_decode_errors_total", "Frames or RTP packets that could not be decoded.", s.DecodeErrors.Load),
		counter("callvault_capture_sip_messages_total", "SIP messages parsed.", s.SIPMessages.Load),
		counter("callvault_capture_sip_errors_total", "SIP messages that could not be parsed.", s.SIPErrors.Load),
		counter("callvault_capture_rtp_packets_total", "RTP packets queued for a recording.", s.RTPPackets.Load),
		counter("callvault_capture_rtcp_packets_total", "RTCP packets of known streams.", s.RTCPPackets.Load),
		counter("callvault_capture_rtp_unmatched_total", "RTP-looking packets of no known stream.", s.RTPUnmatched.Load),
		counter("callvault_capture_ring_drops_total", "RTP packets dropped because a stream's ring was full (flushers behind).", s.RingDrops.Load),
		counter("callvault_capture_srtp_errors_total", "SRTP packets that failed to decrypt or authenticate.", s.SRTPErrors.Load),
		counter("callvault_capture_kernel_drops_total", "Frames the kernel dropped because a capture ring was full (readers behind).", s.KernelDrops.Load),
		counter("callvault_capture_kernel_packets_total", "Frames the kernel passed to capture sockets, dropped ones included.", s.KernelPackets.Load),
		counter("callvault_capture_tcp_stream_gaps_total", "Gaps in reassembled SIP-over-TCP streams.", s.TCPStreamGaps.Load),
		counter("callvault_capture_fragment_errors_total", "IP fragments that could not be reassembled.", s.FragmentErrors.Load),
		gauge("callvault_capture_calls_active", "Calls being followed now.", func() float64 { return float64(s.CallsActive.Load()) }),
		counter("callvault_capture_calls_total", "Calls seen (INVITEs and signalling-less streams).", s.CallsTotal.Load),
		counter("callvault_capture_calls_answered_total", "Calls answered.", s.CallsAnswered.Load),
		counter("callvault_capture_calls_one_way_total", "Answered calls with media in one direction only.", s.OneWayCalls.Load),
		counter("callvault_capture_calls_no_media_total", "Answered calls with no RTP in either direction (media not mirrored to the capture).", s.NoMediaCalls.Load),
		gauge("callvault_capture_streams_active", "RTP streams being recorded now.", func() float64 { return float64(s.StreamsActive.Load()) }),
		counter("callvault_capture_streams_orphan_total", "RTP streams found without signalling.", s.OrphanStreams.Load),
		counter("callvault_capture_recordings_total", "Recordings created by capture.", s.Recordings.Load),
		counter("callvault_capture_record_errors_total", "Store errors while recording.", s.RecordErrors.Load),
		counter("callvault_capture_recordings_not_playable_total", "Recordings kept as RTP packets (codec not decodable).", s.NotPlayable.Load),
		counter("callvault_capture_after_end_total", "RTP packets for calls that had already ended.", s.AfterEnd.Load),
		gauge("callvault_capture_flush_seconds", "Duration of the last flusher pass.", seconds(s.FlushNanos.Load)),
		gauge("callvault_capture_flush_max_seconds", "Longest flusher pass so far.", seconds(s.FlushMaxNanos.Load)),
		gauge("callvault_capture_ring_occupancy", "RTP packets waiting in rings at the last flusher pass.", func() float64 { return float64(s.RingOccupancy.Load()) }),
		gauge("callvault_capture_store_queue", "Store jobs (create, seal, bookmarks) waiting for the capture's store workers.", func() float64 { return float64(s.StoreQueue.Load()) }),
		gauge("callvault_capture_store_job_max_seconds", "Longest single store job of the capture so far.", seconds(s.StoreMaxNanos.Load)),
	}
	for _, i := range ifaces {
		lbl := prometheus.Labels{"interface": i.Name}
		ic := func(name, help string, f func() int64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: lbl}, func() float64 { return float64(f()) })
		}
		cs = append(cs,
			ic("callvault_capture_interface_frames_total", "Frames read from the interface.", i.Frames.Load),
			ic("callvault_capture_interface_kernel_packets_total", "Frames the kernel passed to the interface's capture sockets, dropped ones included.", i.KernelPackets.Load),
			ic("callvault_capture_interface_kernel_drops_total", "Frames the kernel dropped on the interface's capture sockets.", i.KernelDrops.Load),
			ic("callvault_capture_interface_read_errors_total", "Failed reads of the interface's capture sockets.", i.ReadErrors.Load),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("capture metrics: %w", err)
		}
	}
	return nil
}
