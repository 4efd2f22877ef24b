//go:build tools

// Package tools pins the Dendrite homeserver that the bridge tests run
// against. It is a module of its own so that Dendrite's dependency pins never
// mix with Entente's.
package tools

import (
	_ "github.com/matrix-org/dendrite/cmd/create-account"
	_ "github.com/matrix-org/dendrite/cmd/dendrite"
	_ "github.com/matrix-org/dendrite/cmd/generate-config"
	_ "github.com/matrix-org/dendrite/cmd/generate-keys"
)
