package router

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	ingested        *prometheus.CounterVec
	dropped         *prometheus.CounterVec
	bindings        *prometheus.CounterVec
	paused          prometheus.Counter
	turns           *prometheus.CounterVec
	turnSeconds     *prometheus.HistogramVec
	enqueued        prometheus.Counter
	unrouted        prometheus.Counter
	deliveries      *prometheus.CounterVec
	deliverySeconds *prometheus.HistogramVec
	e2eSeconds      *prometheus.HistogramVec
	inHand          *prometheus.GaugeVec
	refused         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_router_ingested_total", Help: "Inbound messages stored, by source.",
		}, []string{"source"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_router_dropped_total", Help: "Inbound messages that reached no session, by source and reason.",
		}, []string{"source", "reason"}),
		bindings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_router_bindings_created_total", Help: "Conversations bound to sessions, by route.",
		}, []string{"route"}),
		paused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_router_loop_breaker_pauses_total", Help: "Bindings paused by the loop breaker.",
		}),
		turns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_router_turns_total", Help: "Agent turns run, by route and result (ok, failed, interrupted).",
		}, []string{"route", "result"}),
		turnSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_router_turn_seconds", Help: "Duration of agent turns, by route.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"route"}),
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_outbox_enqueued_total", Help: "Deliveries added to the outbox.",
		}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_outbox_unrouted_total", Help: "Outputs with no conversation to deliver to.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_outbox_attempts_total", Help: "Delivery attempts, by sink and result (delivered, retry, dead).",
		}, []string{"sink", "result"}),
		deliverySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_outbox_delivery_seconds", Help: "Duration of successful delivery attempts, by sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"sink"}),
		e2eSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_outbox_output_to_delivered_seconds", Help: "Time from an output's timestamp to its delivery, by sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"sink"}),
		inHand: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_router_sessions_in_hand", Help: "Sessions this process is working on, by cursor consumer (runtime, outbox, webhooks).",
		}, []string{"consumer"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_router_outputs_refused_total", Help: "Agent outputs the store refused after every try, by route; a system record in the log says so.",
		}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.ingested, m.dropped, m.bindings, m.paused, m.turns, m.turnSeconds,
			m.enqueued, m.unrouted, m.deliveries, m.deliverySeconds, m.e2eSeconds, m.inHand, m.refused)
	}
	return m
}
