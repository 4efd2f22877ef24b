package federation

import (
	"context"
	"net/http"

	"github.com/entente-org/entente/internal/localuser"
)

// This file is the whole boundary between federation and the node that
// embeds it: what federation asks of the node, as four small interfaces.
// The node's implementations are in internal/node/hooks.go; docs/
// architecture.md follows a join and a chat line across them.

// LogWatcher is told that a conference's log or replica has grown (spec §6,
// §7): a join, a leave, a removal or an end, so that the SFU rechecks who may
// take part and the bridge brings the Matrix room in line. LogChanged must
// not block: it runs inside the request or delivery that grew the log.
type LogWatcher interface {
	LogChanged(conference string)
}

// SignalReceiver receives every verified signal (chat, hands, reactions,
// mute states; spec §5) of a conference this node takes part in, including
// its own users'. ReceiveSignal must not block.
type SignalReceiver interface {
	ReceiveSignal(Signal)
}

// TrunkAnswerer answers a member node's trunk offer for a conference hosted
// here with the host SFU's SDP answer (spec §10). Without one, offers are
// refused (404). An *httpapi.Error it returns chooses the status.
type TrunkAnswerer interface {
	AnswerTrunk(ctx context.Context, conference, peer string, offer TrunkOffer) (answerSDP string, err error)
}

// UserAuth establishes which local user makes a client or admin API request
// (spec/client-api.md §1). Returning an *httpapi.Error lets it choose the
// status (401 for a missing token).
type UserAuth interface {
	Authenticate(r *http.Request) (localuser.User, error)
}
