"""Known-content matching: perceptual hashes (PDQ), copy-style augmentations, embedding similarity.

PDQ catches near-exact copies (re-encodes, rescales, small edits) cheaply and is the format hash-sharing
programmes exchange; embeddings catch heavier edits (crops, overlays, rotations) that move a PDQ hash too far.
"""

from __future__ import annotations
