package federation

import "sync/atomic"

// DeliveryStats counts the outbox's delivery attempts by outcome since the
// service started (spec/federation.md §8), for the node's metrics.
type DeliveryStats struct {
	// Delivered attempts got the peer's receipt.
	Delivered uint64
	// Retried attempts failed and were scheduled again.
	Retried uint64
	// Throttled attempts were answered 429 and wait as the peer asked.
	Throttled uint64
	// Refused attempts got an answer that sending again will not change;
	// their messages are failed.
	Refused uint64
	// Expired messages reached their expiry undelivered.
	Expired uint64
}

// deliveryCounters is DeliveryStats kept by concurrent deliveries; its zero
// value is ready.
type deliveryCounters struct {
	delivered, retried, throttled, refused, expired atomic.Uint64
}

// DeliveryStats returns the delivery outcomes counted so far.
func (s *Service) DeliveryStats() DeliveryStats {
	c := &s.deliveries
	return DeliveryStats{
		Delivered: c.delivered.Load(),
		Retried:   c.retried.Load(),
		Throttled: c.throttled.Load(),
		Refused:   c.refused.Load(),
		Expired:   c.expired.Load(),
	}
}
