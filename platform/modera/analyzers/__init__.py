"""Analyzers: one per modality, batch-first, model loading separate from construction."""
