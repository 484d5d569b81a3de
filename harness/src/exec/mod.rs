//! `torture exec`: torture any program — run a user command with a fresh database path, kill it at seeded points, verify with integrity_check and the acknowledgement protocol.
