// Package media owns each node's selective forwarding unit (SFU), built on
// pion/webrtc: client signalling, RTCP handling, simulcast, and the cascade
// trunks that carry media between the SFUs of participating organisations.
//
// media must not import federation, bridge or web. It asks whether a user may
// publish or subscribe in a conference through a small interface supplied by
// its caller, so that conference membership stays federation's concern.
package media
