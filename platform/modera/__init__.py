"""Modera: content moderation on Ray.

Importing this package does nothing but define names: entry points (pipelines, Serve apps, the
CLI) configure logging, tracking URIs and directories.
"""

__version__ = "0.1.0"
