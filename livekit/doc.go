// Package livekit speaks LiveKit's client signalling (the WebSocket at /rtc
// with the protobuf messages of github.com/livekit/protocol), so that LiveKit
// clients (Element Call, La Suite Meet's front end, the LiveKit SDKs) take
// part in Entente conferences beside native clients (spec/client-api.md §8).
//
// It owns the LiveKit access tokens of a node (minting and verifying them
// with its API key and secret) and the translation between LiveKit's
// messages and a media.Session: each LiveKit participant is an ordinary
// participant of the SFU, so membership, removal, forwarding and the cascade
// to other organisations are media's, not this package's. It must not import
// federation, bridge or web; the caller wires who may take part.
package livekit
