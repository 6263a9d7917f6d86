"""Object keys: the one set of rules every object store backend applies.

A key is a relative, ``/``-separated path whose limits are the strictest of S3's and common
filesystems', so a key valid for one backend is valid for all and objects can move between
them. :func:`validate_key` and :func:`validate_prefix` are re-exported by
:mod:`synapsenet.core.storage`.
"""

from __future__ import annotations

import unicodedata

from synapsenet.errors import InvalidError

MAX_KEY_BYTES = 1024
"""S3's limit on a key, applied to every backend so that keys move between them."""
MAX_SEGMENT_BYTES = 255
"""Most filesystems' limit on one file name, applied to every backend for the same reason."""
RESERVED_SEGMENT_PREFIX = ".synapsenet-tmp"
"""Segments starting with this are the local store's temporary files, so keys may not."""


def _shorten(text: str, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _key_problem(key: str) -> str | None:
    """Say what is wrong with ``key``, or return None for a valid key."""
    if not isinstance(key, str):
        return f"it must be a str, not {type(key).__name__}"
    if not key:
        return "it is empty"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode (it contains a lone surrogate)"
    if size > MAX_KEY_BYTES:
        return f"it is {size} bytes in UTF-8, more than the {MAX_KEY_BYTES} allowed"
    if key.startswith("/"):
        return "it is an absolute path; keys are relative, '/'-separated paths"
    if "\\" in key:
        return "it contains a backslash; separate segments with '/'"
    control = next((ch for ch in key if unicodedata.category(ch) == "Cc"), None)
    if control is not None:
        return f"it contains the control character {control!r}"
    if key.endswith("/"):
        return "it ends with '/'"
    for segment in key.split("/"):
        if not segment:
            return "it has an empty segment ('//')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"its segment {_shorten(segment)} is longer than {MAX_SEGMENT_BYTES} bytes"
        if segment.startswith(RESERVED_SEGMENT_PREFIX):
            return f"its segment {_shorten(segment)} uses the reserved {RESERVED_SEGMENT_PREFIX!r}"
    return None


def validate_key(key: str) -> str:
    """Check that ``key`` names an object the same way on every backend.

    A key is a relative, ``/``-separated path of at most 1024 UTF-8 bytes, without empty,
    ``.`` or ``..`` segments, backslashes, control characters or a trailing ``/``; each
    segment is at most 255 bytes and may not start with :data:`RESERVED_SEGMENT_PREFIX`.

    Args:
        key: The key to check.

    Returns:
        The key, unchanged.

    Raises:
        InvalidError: Naming the key and what is wrong with it (``field="key"``).
    """
    problem = _key_problem(key)
    if problem is not None:
        raise InvalidError(f"Invalid object key {_shorten(str(key))}: {problem}.", field="key")
    return key


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix: empty, or a valid key optionally followed by ``/``.

    The last segment may be partial (``chunks/ab`` matches ``chunks/abcd``); listing is by
    string prefix, as in S3.

    Args:
        prefix: The prefix to check.

    Returns:
        The prefix, unchanged.

    Raises:
        InvalidError: Naming the prefix and what is wrong with it (``field="prefix"``).
    """
    if prefix == "":
        return prefix
    body = prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix
    problem = "it is an absolute path" if prefix == "/" else _key_problem(body)
    if problem is not None:
        raise InvalidError(
            f"Invalid key prefix {_shorten(str(prefix))}: {problem}.", field="prefix"
        )
    return prefix
