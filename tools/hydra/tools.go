//go:build tools

// Package tools pins the Ory Hydra OpenID provider that the sign-in tests run
// against. It is a module of its own so that Hydra's dependency pins never mix
// with Entente's.
package tools

import (
	_ "github.com/ory/hydra/v2"
)
