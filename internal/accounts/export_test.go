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
