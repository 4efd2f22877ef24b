package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// MaxBody bounds the JSON bodies of client and admin API requests.
const MaxBody = 64 << 10

// DecodeJSON decodes one JSON value from at most limit bytes of r into v,
// strictly: a field v does not have, or data after the value, is an error.
func DecodeJSON(r io.Reader, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

// ReadJSON decodes r's body into v as DecodeJSON does, with MaxBody, and
// answers 400 naming what was wrong when it cannot.
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := DecodeJSON(r.Body, MaxBody, v); err != nil {
		WriteError(w, BadRequest("request body: %v", err))
		return false
	}
	return true
}
