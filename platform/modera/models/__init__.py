"""Model definitions, packaged weights and the factory that resolves model references."""
