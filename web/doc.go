// Package web owns the browser client, embedded into the binary so that a node
// serves it without any separate build step.
//
// web holds static assets and the handler that serves them. It must not import
// federation, media, bridge or store: the client talks to the node only through
// the documented client API (spec/client-api.md).
package web
