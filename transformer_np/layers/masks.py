"""Attention masks: boolean arrays, ``True`` = may attend. Background: notes/attention.md, "Masks".

Every mask is broadcastable to the score shape (B, H, Tq, Tk), one axis per question
"which batch element, which head, which query, which key":

    causal_mask(T)                      (1, 1, T, T)   query t sees keys 0..t
    causal_mask(T, offset=t0)           (1, 1, T, t0 + T)  the rows t0 .. t0+T-1 of a longer one
    padding_mask_from_lengths(lengths, T)  (B, 1, 1, T)   key j of sequence b is real if j < lengths[b]
    padding_mask_from_ids(ids, pad_id)  (B, 1, 1, T)   key j of sequence b is real if ids[b, j] != pad_id
    combine_masks(m1, m2, ...)          logical AND with broadcasting (None entries ignored)
    mask_bias(mask, S)                  the mask's shape: 0 where True, -inf where False

A padding mask hides *keys* only: a padded query position still computes an output (it is
ignored later by the loss), which keeps every query row with at least one visible key.
``check_mask`` is the validation every attention layer runs on the mask it receives.
"""

from ..backend import get_array_module, get_backend
from ..validate import check_int, check_int_ids, check_ndim


def causal_mask(T, xp=None, offset=0):
    """(1, 1, T, offset + T) mask: query i (at position offset + i) may attend to keys
    0 .. offset + i, never the future. With offset 0 it is the (1, 1, T, T) lower triangle; with
    an offset it is rows offset .. offset + T - 1 of the causal mask of length offset + T, as
    a KV-cached step needs (its queries are the new positions, its keys every position so far).

    ``xp`` is the array module to build it with (NumPy when None; pass CuPy for a GPU mask).
    """
    T, offset = check_int(T, "T"), check_int(offset, "offset", low=0)
    xp = get_backend("numpy") if xp is None else xp
    return xp.tril(xp.ones((T, offset + T), dtype=bool), k=offset)[None, None, :, :]


def padding_mask_from_lengths(lengths, T):
    """(B, 1, 1, T) key-padding mask: entry [b, 0, 0, j] is True when j < lengths[b].

    ``lengths`` is a 1-D integer array (NumPy or CuPy; a list becomes a NumPy array) of the
    real lengths of the B sequences, each in [0, T]. A length of 0 masks every key of that
    sequence; attention then gives that batch element zeros (notes/attention.md).
    """
    if not hasattr(lengths, "dtype"):
        lengths = get_backend("numpy").asarray(lengths)
    check_ndim(lengths, 1, "lengths", "(B,)")
    check_int_ids(lengths, 0, T + 1, "lengths")  # integer dtype, every value in [0, T]
    xp = get_array_module(lengths)
    positions = xp.arange(T)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


def padding_mask_from_ids(ids, pad_id):
    """(B, 1, 1, T) key-padding mask from token ids (B, T): True where ``ids != pad_id``."""
    check_ndim(ids, 2, "ids", "(B, T)")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids: expected an integer array, received {ids.dtype}")
    return (ids != pad_id)[:, None, None, :]


def combine_masks(*masks):
    """Logical AND of the masks, broadcast together; None entries are skipped.

    Returns None when every entry is None (no masking at all). Example: a decoder's
    self-attention mask is ``combine_masks(padding_mask_from_ids(ids, pad), causal_mask(T))``,
    of shape (B, 1, T, T).
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    for i, m in enumerate(present):
        if getattr(m, "dtype", None) != bool:
            got = getattr(m, "dtype", type(m).__name__)
            raise TypeError(f"mask {i}: expected a boolean array, received {got}")
    combined = present[0]
    for m in present[1:]:
        try:
            combined = combined & m
        except ValueError as err:
            raise ValueError(
                f"masks cannot be combined: expected shapes that broadcast together, received "
                f"{tuple(combined.shape)} and {tuple(m.shape)}"
            ) from err
    return combined


def mask_bias(mask, like):
    """The additive form of a boolean mask: an array of the mask's shape, in the dtype and on
    the backend of ``like`` (the scores), 0 where the mask is True and -inf where it is False.

    ``S + mask_bias(mask, S)`` equals ``where(mask, S, -inf)`` exactly (s + 0 = s and
    s + (-inf) = -inf for every finite s), as (attn.2) asks, but the bias keeps the mask's
    small broadcast shape, e.g. (1, 1, Tq, Tk), and one in-place addition over the scores is
    several times cheaper than a select between two arrays of the scores' shape.
    """
    xp = get_array_module(like)
    bias = xp.zeros(mask.shape, dtype=like.dtype)
    bias[~mask] = -xp.inf
    return bias


def check_mask(mask, B, H, Tq, Tk, name="mask"):
    """``mask`` must be None or a boolean array broadcastable to the scores (B, H, Tq, Tk).

    It needs exactly 4 axes, and each axis must be 1 (shared) or the full size, so that a
    (B, 1, 1, Tk) padding mask and a (1, 1, Tq, Tk) causal mask are accepted but a mask built
    for another sequence length is refused instead of being broadcast by accident.
    """
    if mask is None:
        return
    expected = (B, H, Tq, Tk)
    want = f"a boolean array broadcastable to (B, H, Tq, Tk) = {expected} (each axis 1 or the full size)"
    if getattr(mask, "dtype", None) != bool:
        got = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"{name}: expected {want}, received dtype {got}")
    shape = tuple(mask.shape)
    if len(shape) != 4 or any(s not in (1, full) for s, full in zip(shape, expected)):
        raise ValueError(f"{name}: expected {want}, received shape {shape}")


def sliding_window_mask(T, window, xp=None, offset=0):
    """(1, 1, T, offset + T) mask: query i (at position p = offset + i) may attend to the keys j
    with |p - j| < window (win.1). ANDed with a causal mask it keeps the last ``window`` keys
    (j = p - window + 1 .. p, Mistral's sliding window); alone, the 2 window - 1 keys around the
    query (Longformer's local attention). Background: notes/window.md.
    """
    T, window, offset = check_int(T, "T"), check_int(window, "window"), check_int(offset, "offset", low=0)
    xp = get_backend("numpy") if xp is None else xp
    distance = xp.arange(offset, offset + T)[:, None] - xp.arange(offset + T)[None, :]  # (T, offset + T): p - j
    return (xp.abs(distance) < window)[None, None, :, :]
