"""Known-content matching: perceptual hashes (PDQ), copy-style augmentations, embedding similarity.

PDQ catches near-exact copies (re-encodes, rescales, small edits) cheaply and is the format hash-sharing
programmes exchange; embeddings catch heavier edits (crops, overlays, rotations) that move a PDQ hash too far.

- ``pdq``: hashes, dihedral variants, Hamming search; ``embedding``: the robust signal;
- ``matcher``: the two-stage matcher (PDQ decides what it can, the embedding the rest);
- ``calibrate``: thresholds for a target false-positive rate; ``augment``: copy-style transforms.
"""

from __future__ import annotations
