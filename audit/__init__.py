"""How we prove it and what looks wrong: the hash log (RFC 6962 Merkle tree), checkpoints,
proofs, signature re-verification, inspection rules and replay."""
