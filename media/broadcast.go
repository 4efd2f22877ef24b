package media

import (
	"encoding/json"
	"fmt"
)

// Broadcast sends msg, a JSON object, as a `signal` message to every local
// client joined to conference: its fields at top level, with "type" set to
// "signal". It carries what participants say to each other (chat, hands,
// reactions, mute states), which the SFU forwards without reading.
func (s *SFU) Broadcast(conference string, msg any) error {
	raw, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("media: encode signal: %w", err)
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return fmt.Errorf("media: a signal must be a JSON object, not %s", raw)
	}
	fields["type"] = json.RawMessage(`"signal"`)
	for _, d := range s.router.downs(conference) {
		if c, ok := d.(*client); ok {
			c.sendSignal(fields)
		}
	}
	return nil
}

// sendSignal queues a signal behind `joined`, like router events.
func (c *client) sendSignal(fields map[string]json.RawMessage) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if !c.ready {
		c.early = append(c.early, fields)
		return
	}
	c.send(fields)
}
