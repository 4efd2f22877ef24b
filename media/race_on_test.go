//go:build race

package media

// raceBuild is set when the tests run under the race detector, which slows
// the SFU several times over.
const raceBuild = true
