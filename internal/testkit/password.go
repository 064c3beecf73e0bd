package testkit

import "atrium/internal/identity/password"

// FastPasswordParams are Argon2id parameters cheap enough for tests (64 KiB,
// one pass): the hashing code runs as in production, at a fraction of the cost.
// Never use them outside tests.
func FastPasswordParams() password.Params {
	return password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}
