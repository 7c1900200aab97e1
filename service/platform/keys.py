"""Keys derived from configured credentials, for processes that must agree without sharing state."""

from __future__ import annotations

import hashlib


def stretched_key(material: str, purpose: bytes) -> bytes:
    """32 bytes from `material`, salted by `purpose` so each use gets its own key.

    scrypt, not a plain hash: what is signed with the key (cursors, tokens) must not become a
    cheap offline oracle for guessing a weak credential behind it.
    """
    return hashlib.scrypt(material.encode(), salt=purpose, n=2**14, r=8, p=1, dklen=32)
