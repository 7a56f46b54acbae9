package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"meshgate/shard"
)

// PluginStatus is what the metrics need to know of one plugin.
type PluginStatus struct {
	Name     string
	Up       bool
	Restarts uint64
}

// metrics exposes the node's state to Prometheus. Everything is read at
// scrape time from counters the core keeps anyway: nothing is added to the
// delivery path but the writers' latency histogram, observed once per
// written batch.
type metrics struct {
	reg            *prometheus.Registry
	publishToWrite prometheus.Histogram
}

var (
	descQueues        = prometheus.NewDesc("meshgate_queues", "Queues on this node.", nil, nil)
	descSubscriptions = prometheus.NewDesc("meshgate_subscriptions", "Subscriptions (queue, resource) on this node.", nil, nil)
	descResources     = prometheus.NewDesc("meshgate_resources", "Resources with at least one subscriber on this node.", nil, nil)
	descConnections   = prometheus.NewDesc("meshgate_connections", "Open streaming connections, by transport.", []string{"transport"}, nil)
	descDeliveries    = prometheus.NewDesc("meshgate_deliveries_total", "Notifications appended to queues by fan-out.", nil, nil)
	descNotifications = prometheus.NewDesc("meshgate_notifications_total", "Notifications appended to queues, by kind.", []string{"kind"}, nil)
	descOverflows     = prometheus.NewDesc("meshgate_overflows_total", "OVERFLOW notifications handed to readers.", nil, nil)
	descQueuesCreated = prometheus.NewDesc("meshgate_queues_created_total", "Queues created.", nil, nil)
	descQueuesExpired = prometheus.NewDesc("meshgate_queues_expired_total", "Queues removed by lease expiry.", nil, nil)
	descPluginUp      = prometheus.NewDesc("meshgate_plugin_up", "1 when the publisher plugin is running.", []string{"plugin"}, nil)
	descPluginRestart = prometheus.NewDesc("meshgate_plugin_restarts_total", "Restarts of the publisher plugin after a crash.", []string{"plugin"}, nil)
	descRingShare     = prometheus.NewDesc("meshgate_ring_share", "Each member's share of the hash ring (0-1), as this node's ring has it.", []string{"node"}, nil)
	descRingMembers   = prometheus.NewDesc("meshgate_ring_members", "Members of this node's ring.", nil, nil)
	descForwarded     = prometheus.NewDesc("meshgate_cluster_forwarded_total", "Calls and ops this node sent to another node, by peer.", []string{"peer"}, nil)
	descClusterEvents = prometheus.NewDesc("meshgate_cluster_events_total", "Cluster events: ring changes, keys given and taken in hand-offs, crash repairs, RESYNCs the post-settle audit appended (a safety net: it should find nothing), ops dropped because a peer was unreachable, streams relayed from another node, publishes that found no list not remembered (over the bound).", []string{"event"}, nil)
)

// collector reads the store, the wheel and the plugins at scrape time.
type collector struct {
	s *Server
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueues, descSubscriptions, descResources, descConnections, descDeliveries,
		descNotifications, descOverflows, descQueuesCreated, descQueuesExpired, descPluginUp, descPluginRestart,
		descRingShare, descRingMembers, descForwarded, descClusterEvents} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.store.Stats()
	ch <- prometheus.MustNewConstMetric(descQueues, prometheus.GaugeValue, float64(st.Queues))
	ch <- prometheus.MustNewConstMetric(descSubscriptions, prometheus.GaugeValue, float64(st.Subscriptions))
	ch <- prometheus.MustNewConstMetric(descResources, prometheus.GaugeValue, float64(st.Resources))
	n := c.s.wheel.countByKind()
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(n.ws), "websocket")
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(n.sse), "sse")
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(n.multipart), "multipart")
	k := c.s.store.Counters()
	ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(k.Deliveries.Load()))
	for kind := shard.Changed; kind <= shard.Revoked; kind++ {
		if kind == shard.Overflow {
			continue // made at read time: meshgate_overflows_total
		}
		ch <- prometheus.MustNewConstMetric(descNotifications, prometheus.CounterValue, float64(k.Notifications[kind].Load()), kind.String())
	}
	ch <- prometheus.MustNewConstMetric(descOverflows, prometheus.CounterValue, float64(k.Overflows.Load()))
	ch <- prometheus.MustNewConstMetric(descQueuesCreated, prometheus.CounterValue, float64(k.QueuesCreated.Load()))
	ch <- prometheus.MustNewConstMetric(descQueuesExpired, prometheus.CounterValue, float64(k.QueuesExpired.Load()))
	r := c.s.node.Ring()
	ch <- prometheus.MustNewConstMetric(descRingMembers, prometheus.GaugeValue, float64(len(r.Nodes())))
	for n, share := range r.Shares() { // sampled once per ring
		ch <- prometheus.MustNewConstMetric(descRingShare, prometheus.GaugeValue, share, n)
	}
	cs := c.s.node.Stats()
	for peer, k := range cs.Forwarded() {
		ch <- prometheus.MustNewConstMetric(descForwarded, prometheus.CounterValue, float64(k), peer)
	}
	for _, e := range []struct {
		name string
		v    uint64
	}{{"ring_change", cs.RingChanges.Load()}, {"key_given", cs.KeysGiven.Load()}, {"key_taken", cs.KeysTaken.Load()},
		{"repair", cs.Repairs.Load()}, {"audit_resync", cs.Audited.Load()}, {"recheck_revoked", cs.Rechecked.Load()}, {"dropped", cs.Dropped.Load()}, {"relay", cs.Relays.Load()},
		{"unheld_dropped", k.UnheldDropped.Load()}} {
		ch <- prometheus.MustNewConstMetric(descClusterEvents, prometheus.CounterValue, float64(e.v), e.name)
	}
	if c.s.cfg.Plugins != nil {
		for _, p := range c.s.cfg.Plugins() {
			up := 0.0
			if p.Up {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descPluginUp, prometheus.GaugeValue, up, p.Name)
			ch <- prometheus.MustNewConstMetric(descPluginRestart, prometheus.CounterValue, float64(p.Restarts), p.Name)
		}
	}
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.publishToWrite = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "meshgate_publish_to_write_seconds",
		Help:    "From an event's publication to its notification being written to a stream (first notification of each written batch).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14), // 100 µs … ~15 min
	})
	handoff := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "meshgate_handoff_seconds",
		Help:    "Duration of each hand-off this node took part in (a batch of keys taken) and of each crash repair.",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 12), // 1 ms … ~3 min
	})
	s.node.Stats().OnHandoff(func(d time.Duration) { handoff.Observe(d.Seconds()) })
	m.reg.MustRegister(collector{s}, m.publishToWrite, handoff,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeWrite records the age of the oldest notification in a batch.
func (m *metrics) observeWrite(published time.Time, now time.Time) {
	if !published.IsZero() {
		m.publishToWrite.Observe(now.Sub(published).Seconds())
	}
}

// handler serves /metrics. On the public listener it needs a token with
// the admin scope (Prometheus sends it with `authorization: credentials`).
func (m *metrics) handler(s *Server, needToken bool) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	if !needToken {
		return h
	}
	return s.requireAdmin("metrics need the admin scope", h)
}

// MetricsHandler serves /metrics without a token, for a loopback-only
// debug listener.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler(s, false) }
