"""The HTTP edge's shared pieces: request parsing with limits, and typed errors mapped to status codes.

Serve apps use these; analyzers, models and the policy engine never import them.
"""
