// Package bridge owns the Matrix application service that brings Matrix rooms
// and users into Entente conferences: portal rooms, ghost users, MatrixRTC call
// membership and chat mirroring. It talks to Matrix only through mautrix's
// appservice package.
//
// bridge must not reach into media or the store's tables of other packages; it
// acts on conferences through the interfaces its caller supplies.
package bridge
