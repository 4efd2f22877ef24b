//go:build race

package replicatest

// raceEnabled builds the replicas with the race detector when the tests
// themselves run with it.
const raceEnabled = true
