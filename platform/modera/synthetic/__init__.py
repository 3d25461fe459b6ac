"""Synthetic, seeded data sets with known labels, for tests and benchmarks (no downloads)."""
