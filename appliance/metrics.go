package appliance

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry builds the one Prometheus registry of the process. The Go
// runtime and process collectors are registered under the callvault_
// prefix so every series the appliance exports shares it.
func newRegistry(b Build) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	prefixed := prometheus.WrapRegistererWithPrefix("callvault_", reg)
	prefixed.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "callvault_build_info",
		Help:        "Build of the running binary (always 1).",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "go": b.Go},
	})
	info.Set(1)
	reg.MustRegister(info)
	return reg
}

// counterFunc exports a counter kept by a subsystem's Stats atomics
// (store and capture cannot import Prometheus: it imports net/http).
func counterFunc(name, help string, f func() int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
}

// gaugeFunc exports a gauge read at scrape time.
func gaugeFunc(name, help string, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
}
