package accounts

import "context"

// VerifyIDToken runs the checks the callback makes on an ID token, for the
// tests that present tokens the flow itself would never deliver.
func (o *OIDC) VerifyIDToken(ctx context.Context, raw, nonce string) (Claims, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return Claims{}, err
	}
	return o.verify(ctx, p, o.verifier(p), raw, nonce)
}

// SetFailureCapacity shrinks the table of failed sign-ins, so that a test
// fills it with a few requests instead of ten thousand.
func (h *LoginHandler) SetFailureCapacity(n int) { h.failures.capacity = n }
