package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// originHeader names the replica that published a message, so that it does
// not apply its own message twice.
const originHeader = "Entente-Replica"

// Publish sends data on the node's subject entente.<nodekey>.<topic> to
// every other replica subscribed to topic. Delivery is core NATS: at most
// once, to the replicas connected now; what must survive a replica's death
// lives in the store, not in these messages.
func (c *Cluster) Publish(ctx context.Context, topic string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := nats.NewMsg(c.subjects + topic)
	msg.Header.Set(originHeader, c.opts.ReplicaID)
	msg.Data = data
	if err := c.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("cluster publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls fn with every message another replica publishes on topic
// (a replica's own messages are not delivered back: it applies them before
// publishing). fn runs on one goroutine per subscription, in order; it must
// not block long. The returned function ends the subscription.
func (c *Cluster) Subscribe(topic string, fn func([]byte)) (unsubscribe func(), err error) {
	if topic == "" {
		return nil, errors.New("cluster subscribe: empty topic")
	}
	sub, err := c.nc.Subscribe(c.subjects+topic, func(m *nats.Msg) {
		if m.Header.Get(originHeader) == c.opts.ReplicaID {
			return
		}
		fn(m.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("cluster subscribe %s: %w", topic, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
