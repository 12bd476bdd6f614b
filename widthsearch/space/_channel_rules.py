"""Per-op rules for the ops that move, join or cut channels without weights.

Concatenation and stacking, permutes and transposes, reductions, and the splits of the
channels (``split``, ``chunk``, ``unbind``, ``narrow``, slicing), whose sizes follow module
attributes where those hold them. Every rule takes the tracer, the op's output and the op's own
arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from widthsearch.space._records import Label
from widthsearch.space._tracer_base import TracerBase


def _cat(tr: TracerBase, out, tensors, dim=0, **kw):
    labels = [tr.label(t) for t in tensors]
    if all(lab is None for lab in labels):
        return
    d = dim % out.ndim
    known = [lab for lab in labels if lab is not None]
    if len(known) == len(labels) and all(lab.dim == d for lab in known):
        tr.set_label(out, Label(d, tuple(s for lab in known for s in lab.segs)))
        return
    if any(lab.dim == d for lab in known):
        raise tr.fail("torch.cat joins channel tensors with tensors that carry no channels")
    if len({lab.dim for lab in known}) != 1:
        raise tr.fail("torch.cat joins tensors whose channels sit on different dims")
    for lab in known[1:]:
        tr.union_segs(known[0].segs, lab.segs)
    lab = known[0]
    for t, tlab in zip(tensors, labels, strict=True):
        if tlab is None and t.shape[lab.dim] > 1:  # e.g. a class token joined along tokens
            pname = tr.param_name(t)
            if pname is not None:
                tr._scale(pname, lab.segs, t.shape[lab.dim])
            else:
                tr.uf.fix(lab.segs, f"fixed: a constant per channel in {tr.where()}")
    tr.set_label(out, lab)


def _stack(tr: TracerBase, out, tensors, dim=0, **kw):
    """Tensors stacked on a new dim (SelectiveKernel's paths): one group, channels shifted."""
    labels = [tr.label(t) for t in tensors]
    if all(lab is None for lab in labels):
        return
    known = [lab for lab in labels if lab is not None]
    if len(known) != len(labels) or len({lab.dim for lab in known}) != 1:
        raise tr.fail("torch.stack joins tensors whose channels sit on different dims")
    for lab in known[1:]:
        tr.union_segs(known[0].segs, lab.segs)
    d, new = known[0].dim, dim % out.ndim
    tr.set_label(out, Label(d + 1 if new <= d else d, known[0].segs))


def _permute(tr: TracerBase, out, x, *dims):
    lab = tr.label(x)
    if lab is None:
        tr._generic("permute", out, (x, *dims), {})
        return
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    order = [d % x.ndim for d in dims]
    tr.set_label(out, Label(order.index(lab.dim), lab.segs))


def _transpose(tr: TracerBase, out, x, dim0, dim1):
    lab = tr.label(x)
    if lab is None:
        tr._generic("transpose", out, (x, dim0, dim1), {})
        return
    d0, d1, d = dim0 % x.ndim, dim1 % x.ndim, lab.dim
    tr.set_label(out, Label(d1 if d == d0 else d0 if d == d1 else d, lab.segs))


def reduction(tr: TracerBase, out, x, dim=None, keepdim=False, *a, **k):
    lab = tr.label(x) if isinstance(x, torch.Tensor) else None
    if lab is None or not isinstance(out, torch.Tensor):
        if isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor):
            tr._generic("reduction", out, (x,), {})
        return
    if dim is None:
        return
    dims = [dim] if isinstance(dim, int) else list(dim)
    dims = [d % x.ndim for d in dims]
    if lab.dim in dims:
        return  # reduced over channels: the result carries none
    new = lab.dim if keepdim else lab.dim - sum(d < lab.dim for d in dims)
    tr.set_label(out, Label(new, lab.segs))


# ------------------------------------------------------------------ splits of the channels
def _pieces_to(tr: TracerBase, outs, dim: int, pieces) -> None:
    for o, piece in zip(outs, pieces, strict=True):
        tr.set_label(o, Label(dim, piece))


def _split(tr: TracerBase, out, x, split_size_or_sections, dim=0):
    """``torch.split``: by a list of sizes (each explained by an attribute holding the list or
    the size, or kept), or into equal pieces of one size (tied; an attribute holding the size,
    or the whole width when the size is a fraction of it, follows)."""
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        _other_dim(tr, out, x, lab)
        return
    c = x.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        sizes = [s] * (c // s) + ([c % s] if c % s else [])
    else:
        sizes = [int(v) for v in split_size_or_sections]
    pieces = tr.split_pieces(x, lab, sizes)
    _pieces_to(tr, out, d, pieces)
    what = "'split'"
    if not isinstance(split_size_or_sections, int):
        names = tr.size_attrs(sizes)
        for name in names:
            tr.claim(name, pieces, type(getattr(tr._stack[-1][2], name)).__name__)
        if not names:
            for size, piece in zip(sizes, pieces, strict=True):
                tr.explain_size(size, piece, what)
        return
    if len(pieces) == 1:
        return
    if c % s:
        tr.uf.fix(lab.segs, f"fixed: 'split' in {tr.where()} leaves a remainder")
        return
    tr.tie(pieces, f"tied: {len(pieces)} equal pieces of 'split' in {tr.where()}")
    names = tr.size_attrs(s)
    for name in names:
        tr.claim(name, [pieces[0]], "int")
    if names:
        return
    names = tr.size_attrs(c)  # e.g. CrossStage: x.split(self.expand_chs // 2)
    for name in names:
        tr.claim(name, [lab.segs], "int")
    if not names:
        tr.uf.fix(lab.segs, f"fixed: 'split' in {tr.where()} takes a constant size")


def _chunk(tr: TracerBase, out, x, chunks, dim=0):
    """``torch.chunk``: equal pieces, tied together (a remainder keeps the widths)."""
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        _other_dim(tr, out, x, lab)
        return
    c = x.shape[d]
    size = -(-c // chunks)
    sizes = [size] * (c // size) + ([c % size] if c % size else [])
    pieces = tr.split_pieces(x, lab, sizes)
    _pieces_to(tr, out, d, pieces)
    if c % size:
        tr.uf.fix(lab.segs, f"fixed: 'chunk' in {tr.where()} leaves a remainder")
    else:
        tr.tie(pieces, f"tied: {len(pieces)} equal chunks in {tr.where()}")


def _unbind(tr: TracerBase, out, x, dim=0):
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        if lab is not None:
            for o in out:
                tr.set_label(o, Label(lab.dim - (d < lab.dim), lab.segs))
        return
    tr.uf.fix(lab.segs, f"fixed: 'unbind' in {tr.where()} takes channels one by one")


def _other_dim(tr: TracerBase, out, x, lab: Label | None) -> None:
    """A split along a dim that holds no channels: every piece keeps them."""
    if lab is None:
        return
    for o in out:
        tr.set_label(o, Label(lab.dim, lab.segs))


def _narrow(tr: TracerBase, out, x, dim, start, length):
    lab = tr.label(x)
    d = dim % x.ndim
    if lab is None or lab.dim != d:
        _other_dim(tr, (out,), x, lab)
        return
    _slice(tr, out, x, lab, int(start), int(start) + int(length), "'narrow'")


def _slice(tr: TracerBase, out, x, lab: Label, start, stop, what: str) -> tuple[int, ...]:
    """``x[:, start:stop]`` along the channels: a split into before / kept / after, whose
    split points follow attributes that hold them or keep the channels before them. Returns
    the segments kept, the label of ``out``."""
    c = x.shape[lab.dim]
    a, b, step = slice(start, stop).indices(c)
    b = max(a, b)
    pieces = tr.split_pieces(x, lab, [a, b - a, c - b])
    tr.set_label(out, Label(lab.dim, pieces[1]))
    if start is not None and start < 0:
        tr.uf.fix(pieces[1] + pieces[2], f"fixed: {what} in {tr.where()} counts from the end")
    elif a > 0:
        tr.explain_offset(a, pieces[0], what)
    if stop is None or stop > c:
        return pieces[1]
    if stop < 0:
        tr.uf.fix(pieces[2], f"fixed: {what} in {tr.where()} counts from the end")
    elif b > 0:
        tr.explain_offset(b, pieces[0] + pieces[1], what)
    return pieces[1]


def _getitem(tr: TracerBase, out, x, idx):
    lab = tr.label(x)
    if lab is None:
        tr._generic("__getitem__", out, (x, idx), {})
        return
    idx = idx if isinstance(idx, tuple) else (idx,)
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in idx):
        raise tr.fail("advanced indexing of a channel tensor is not modelled")
    n_real = sum(1 for i in idx if isinstance(i, (int, slice)))
    if Ellipsis in idx:
        e = idx.index(Ellipsis)
        idx = idx[:e] + (slice(None),) * (x.ndim - n_real) + idx[e + 1 :]
    idx = idx + (slice(None),) * (x.ndim - sum(1 for i in idx if i is not None))
    in_d = out_d = 0
    for i in idx:
        if i is None:
            out_d += 1
            continue
        if in_d == lab.dim:
            if isinstance(i, slice) and i == slice(None) or x.shape[in_d] == 1:
                tr.set_label(out, Label(out_d, lab.segs))
            elif isinstance(i, slice) and i.step in (None, 1):
                kept = _slice(tr, out, x, Label(in_d, lab.segs), i.start, i.stop, "a channel slice")
                tr.set_label(out, Label(out_d, kept))
            else:
                raise tr.fail("indexing a channel tensor by single channels is not modelled")
            return
        in_d += 1
        out_d += 0 if isinstance(i, int) else 1


HANDLERS: dict[str, Callable[..., None]] = {
    "torch.cat": _cat,
    "torch.concat": _cat,
    "torch.concatenate": _cat,
    "torch.stack": _stack,
    "torch.Tensor.permute": _permute,
    "torch.permute": _permute,
    "torch.Tensor.transpose": _transpose,
    "torch.transpose": _transpose,
    "torch.Tensor.__getitem__": _getitem,
    "torch.Tensor.split": _split,
    "torch.functional.split": _split,
    "torch.split": _split,
    "torch.Tensor.chunk": _chunk,
    "torch.chunk": _chunk,
    "torch.Tensor.unbind": _unbind,
    "torch.unbind": _unbind,
    "torch.Tensor.narrow": _narrow,
    "torch.narrow": _narrow,
}
"""The rules of this module by op name (reductions are found by short name: :func:`reduction`)."""

__all__ = ["HANDLERS", "reduction"]
