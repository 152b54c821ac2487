"""A fused, compiled gradient-descent kernel for sweeps of deep linear networks.

:class:`lindyn.engines.NumpyEngine` advances a batch of runs with numpy's batched matmuls:
every step makes several passes over ``d×p`` and ``d×r`` arrays and pays the
dispatch cost of a dozen numpy calls. This module advances the same iterates
(to rounding, checked against :func:`lindyn.gd.naive_gd` in the tests) with one
compiled pass over the rows of the first layer per step:

* **Two exact changes of basis.** Inputs in the eigenbasis of Σx, as in
  :mod:`lindyn.gd` (THEORY §2), and outputs in the singular basis ``V`` of Σxy:
  GD is equivariant under any orthogonal change of output basis too
  (``W_L → W_L V``, ``Σxy → Σxy V``), and there the tracked coordinate
  ``u_i = U_iᵀ W V_i`` is the dot product of column ``i`` of ``W`` with
  ``U_obs[:, i]``: ``2d`` flops instead of a ``d×p`` matrix product.
* **One fused row pass.** For depth ``L ≥ 2`` let ``P = W_2⋯W_L`` (``r×p``).
  Row ``j`` of the product is ``w_j = W_1[j] P``, of the gradient
  ``g_j = μ_j w_j − S_j``; the pass accumulates the loss, ``u`` and
  ``H = W_1ᵀ G`` and updates ``W_1[j] −= η g_j Pᵀ`` in place, four rows at a
  time. The ``r×r`` and ``r×p`` layers are then updated from ``H``: about
  ``6·d·r·p`` flops a step for depth 2, the product ``W`` is never stored.
* **SIMD across runs.** Runs are packed in groups of :data:`LANES`; lane ``b`` of
  every vector register holds run ``b`` of the group, so every operation is a
  full-width vector operation whatever ``r`` and ``p`` are, and a group's
  matrices stay in cache for all its steps. Groups run in parallel threads.

numba is imported here only: :mod:`lindyn.gd` and the simulation jobs that do not
use this kernel start without it. Compiled code is cached on disk
(``cache=True``). Arithmetic is float64; the kernel fuses multiply-adds, so
results differ from numpy's by rounding (relative 1e-15 a step).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from lindyn.gd import EigenProblem
from lindyn.init import layer_shapes

__all__ = ["LANES", "Sweep", "SweepResult", "fast_sweep"]

LANES = 8
"""Runs per SIMD group (one 512-bit register of float64, two 256-bit ones)."""
ROWS = 4
"""Rows of the first layer a pass of the kernel (``d`` is padded to a multiple)."""

# ---------------------------------------------------------------------------
# Explicit SIMD vectors of LANES float64 for numba. numba does not vectorise
# short loops across separate arrays (it cannot prove they do not alias), so the
# kernels load, compute and store whole lane vectors through these intrinsics.
# Indices are flat element offsets into C-contiguous float64 arrays and are not
# bounds-checked: the packing code in :class:`Sweep` owns every shape.

_VECTOR = ir.VectorType(ir.DoubleType(), LANES)


class _VecType(types.Type):
    def __init__(self) -> None:
        super().__init__(name=f"float64x{LANES}")


_vec = _VecType()


@register_model(_VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _is_buffer(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.float64 and arr.layout == "C"


def _vector_pointer(context, builder, arrty, arr, index):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [index]), _VECTOR.as_pointer())


@intrinsic
def _vload(typingctx, arr, index):
    """Lanes ``arr.flat[index : index + LANES]``."""
    if not (_is_buffer(arr) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_vector_pointer(context, builder, sig.args[0], *args), align=8)

    return _vec(arr, index), codegen


@intrinsic
def _vstore(typingctx, arr, index, value):
    """``arr.flat[index : index + LANES] = value``."""
    if not (_is_buffer(arr) and isinstance(index, types.Integer) and value == _vec):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], ptr, align=8)
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def _vsplat(typingctx, x):
    """A vector with ``x`` in every lane."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, sig, args):
        value = context.cast(builder, args[0], sig.args[0], types.float64)
        undef = ir.Constant(_VECTOR, ir.Undefined)
        first = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        return builder.shuffle_vector(first, undef, mask)

    return _vec(x), codegen


@intrinsic
def _vfma(typingctx, a, b, c):
    """``a * b + c``, fused."""
    if not (a == _vec and b == _vec and c == _vec):
        return None

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(_VECTOR, [_VECTOR] * 3)
        fma = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{LANES}f64")
        return builder.call(fma, args)

    return _vec(a, b, c), codegen


def _elementwise(name: str, doc: str):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == _vec and b == _vec):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, name)(*args)

        return _vec(a, b), codegen

    op.__doc__ = doc
    return op


_vsub = _elementwise("fsub", "``a − b``.")
_vmul = _elementwise("fmul", "``a * b``.")

# ---------------------------------------------------------------------------
# Kernels. Layout (flat, C order; L = LANES, G groups):
#   first (G, d, r, L) · mids (G, depth−2, r, r, L) · last (G, r, p, L) ·
#   linear (G, d, p, L) for depth 1 · eta (G, L) · loss (G, T, L) · u (G, T, c, L)
#   mu (d,), S (d, p), U (d, c) shared by all runs.
# d is padded to a multiple of ROWS and p to an even number with zeros: exact, as
# a zero row of S with μ = 0, or a zero column of S and of the last layer, stays
# zero and contributes nothing.


@numba.njit(cache=True)
def _gemm(out, oo, a, ao, a0, a1, b, bo, b0, b1, n, m, q):
    """``out[i, j] = Σ_k A[i, k] B[k, j]`` lane-wise (``n×q`` times ``q×m``).

    ``A[i, k]`` is the lane vector at ``ao + (i·a0 + k·a1)·LANES`` of ``a`` (so a
    transpose is a swap of strides), likewise ``B``; ``out`` is dense at ``oo``.
    Four columns a pass keep four independent chains of multiply-adds in flight.
    """
    for i in range(n):
        for j in range(0, m, 4):
            width = min(4, m - j)
            acc0 = acc1 = acc2 = acc3 = _vsplat(0.0)
            for k in range(q):
                x = _vload(a, ao + (i * a0 + k * a1) * LANES)
                o = bo + (k * b0 + j * b1) * LANES
                acc0 = _vfma(x, _vload(b, o), acc0)
                if width == 4:
                    acc1 = _vfma(x, _vload(b, o + b1 * LANES), acc1)
                    acc2 = _vfma(x, _vload(b, o + 2 * b1 * LANES), acc2)
                    acc3 = _vfma(x, _vload(b, o + 3 * b1 * LANES), acc3)
                else:
                    if width > 1:
                        acc1 = _vfma(x, _vload(b, o + b1 * LANES), acc1)
                    if width > 2:
                        acc2 = _vfma(x, _vload(b, o + 2 * b1 * LANES), acc2)
            o = oo + (i * m + j) * LANES
            _vstore(out, o, acc0)
            if width > 1:
                _vstore(out, o + LANES, acc1)
            if width > 2:
                _vstore(out, o + 2 * LANES, acc2)
            if width > 3:
                _vstore(out, o + 3 * LANES, acc3)


@numba.njit(cache=True)
def _axpy(y, yo, e, x, xo, n):
    """``y[yo:] −= e · x[xo:]`` over ``n`` lane vectors."""
    for i in range(n):
        o = yo + i * LANES
        _vstore(y, o, _vsub(_vload(y, o), _vmul(e, _vload(x, xo + i * LANES))))


@numba.njit(inline="always")
def _four_rows(first, o, rl):
    """Lane vectors of ``W_1[j + i, a]`` for i = 0..3, the first at offset ``o``."""
    return (
        _vload(first, o),
        _vload(first, o + rl),
        _vload(first, o + 2 * rl),
        _vload(first, o + 3 * rl),
    )


@numba.njit(cache=True)
def _row_pass(mu, S, U, first, fo, r, P, H, gk, ua, e):
    """One step of the first layer, :data:`ROWS` rows a pass; returns twice the loss.

    Reads ``P = W_2⋯W_L`` (``r×p`` lane vectors at the start of ``P``), sets
    ``H = W_1ᵀ G`` and ``ua[i] = u_i``, and updates ``W_1`` (at ``first[fo:]``)
    in place. The loss returned lacks the constant ``tr(YᵀY)/n``.
    """
    d, p = S.shape
    c = U.shape[1]
    rl = r * LANES
    zero = _vsplat(0.0)
    for i in range(r * p):
        _vstore(H, i * LANES, zero)
    for i in range(c):
        _vstore(ua, i * LANES, zero)
    loss = zero
    for j in range(0, d, ROWS):
        base = fo + j * rl  # W_1[j + i, a] is at base + i·rl + a·LANES
        # w = W_1[j:j+4] P, two columns at a time, and g = μ w − S into gk.
        for k in range(0, p, 2):
            w00 = w01 = w10 = w11 = w20 = w21 = w30 = w31 = zero
            for a in range(r):
                x0, x1, x2, x3 = _four_rows(first, base + a * LANES, rl)
                y0 = _vload(P, (a * p + k) * LANES)
                y1 = _vload(P, (a * p + k + 1) * LANES)
                w00 = _vfma(x0, y0, w00)
                w01 = _vfma(x0, y1, w01)
                w10 = _vfma(x1, y0, w10)
                w11 = _vfma(x1, y1, w11)
                w20 = _vfma(x2, y0, w20)
                w21 = _vfma(x2, y1, w21)
                w30 = _vfma(x3, y0, w30)
                w31 = _vfma(x3, y1, w31)
            for i, wa, wb in ((0, w00, w01), (1, w10, w11), (2, w20, w21), (3, w30, w31)):
                m = _vsplat(mu[j + i])
                sa = _vsplat(S[j + i, k])
                sb = _vsplat(S[j + i, k + 1])
                ga = _vsub(_vmul(m, wa), sa)
                gb = _vsub(_vmul(m, wb), sb)
                # w (μ w − 2s) = 2 (½ μ w² − w s), the entry's share of the loss
                loss = _vfma(wa, _vsub(ga, sa), loss)
                loss = _vfma(wb, _vsub(gb, sb), loss)
                _vstore(gk, (i * p + k) * LANES, ga)
                _vstore(gk, (i * p + k + 1) * LANES, gb)
                if k < c:
                    acc = _vload(ua, k * LANES)
                    _vstore(ua, k * LANES, _vfma(_vsplat(U[j + i, k]), wa, acc))
                if k + 1 < c:
                    acc = _vload(ua, (k + 1) * LANES)
                    _vstore(ua, (k + 1) * LANES, _vfma(_vsplat(U[j + i, k + 1]), wb, acc))
        # H += W_1[j:j+4]ᵀ g and W_1[j:j+4] −= η g Pᵀ, from the old rows.
        for a in range(r):
            o = base + a * LANES
            x0, x1, x2, x3 = _four_rows(first, o, rl)
            c0 = c1 = c2 = c3 = zero
            for k in range(p):
                q0 = _vload(gk, k * LANES)
                q1 = _vload(gk, (p + k) * LANES)
                q2 = _vload(gk, (2 * p + k) * LANES)
                q3 = _vload(gk, (3 * p + k) * LANES)
                oh = (a * p + k) * LANES
                h = _vfma(x2, q2, _vfma(x3, q3, _vload(H, oh)))
                _vstore(H, oh, _vfma(x0, q0, _vfma(x1, q1, h)))
                y = _vload(P, oh)
                c0 = _vfma(y, q0, c0)
                c1 = _vfma(y, q1, c1)
                c2 = _vfma(y, q2, c2)
                c3 = _vfma(y, q3, c3)
            _vstore(first, o, _vsub(x0, _vmul(e, c0)))
            _vstore(first, o + rl, _vsub(x1, _vmul(e, c1)))
            _vstore(first, o + 2 * rl, _vsub(x2, _vmul(e, c2)))
            _vstore(first, o + 3 * rl, _vsub(x3, _vmul(e, c3)))
    return loss


@numba.njit(cache=True, parallel=True)
def _advance_deep(mu, S, U, first, mids, last, eta, loss, u):
    """``T = loss.shape[1]`` GD steps of every group of a depth ``≥ 2`` sweep."""
    groups, d, r = first.shape[:3]
    p = S.shape[1]
    c = U.shape[1]
    inner = mids.shape[1]
    steps = loss.shape[1]
    rp, rr = r * p * LANES, r * r * LANES
    for grp in numba.prange(groups):
        e = _vload(eta, grp * LANES)
        fo = grp * d * r * LANES
        mo = grp * inner * rr
        lo = grp * rp
        # suffix[i] = W_{i+2}⋯W_L (1-based layers); suffix[0] = P.
        suffix = np.empty((inner + 1) * rp)
        H = np.empty(rp)
        spare = np.empty(rp)
        grad = np.empty(rr)
        gk = np.empty(ROWS * p * LANES)
        ua = np.empty(max(c, 1) * LANES)
        for t in range(steps):
            for i in range(r * p):
                _vstore(suffix, inner * rp + i * LANES, _vload(last, lo + i * LANES))
            for i in range(inner - 1, -1, -1):
                _gemm(suffix, i * rp, mids, mo + i * rr, r, 1, suffix, (i + 1) * rp, p, 1, r, p, r)
            twice = _row_pass(mu, S, U, first, fo, r, suffix, H, gk, ua, e)
            _vstore(loss, (grp * steps + t) * LANES, _vmul(_vsplat(0.5), twice))
            for i in range(c):
                _vstore(u, ((grp * steps + t) * c + i) * LANES, _vload(ua, i * LANES))
            # Middle layer W_{i+2} (1-based) = mids[i]: ∇ = left suffix[i+1]ᵀ with
            # left = (W_1⋯W_{i+1})ᵀ G, then left ← W_{i+2}ᵀ left from the old W_{i+2}.
            left, other = H, spare
            for i in range(inner):
                _gemm(grad, 0, left, 0, p, 1, suffix, (i + 1) * rp, 1, p, r, r, p)
                _gemm(other, 0, mids, mo + i * rr, 1, r, left, 0, p, 1, r, p, r)
                _axpy(mids, mo + i * rr, e, grad, 0, r * r)
                left, other = other, left
            _axpy(last, lo, e, left, 0, r * p)


@numba.njit(cache=True, parallel=True)
def _advance_linear(mu, S, U, linear, eta, loss, u):
    """``T = loss.shape[1]`` GD steps of every group of a depth-1 sweep."""
    groups, d, p = linear.shape[:3]
    c = U.shape[1]
    steps = loss.shape[1]
    for grp in numba.prange(groups):
        e = _vload(eta, grp * LANES)
        base = grp * d * p * LANES
        ua = np.empty(max(c, 1) * LANES)
        for t in range(steps):
            twice = _vsplat(0.0)
            for i in range(c):
                _vstore(ua, i * LANES, twice)
            for j in range(d):
                m = _vsplat(mu[j])
                for k in range(p):
                    o = base + (j * p + k) * LANES
                    w = _vload(linear, o)
                    s = _vsplat(S[j, k])
                    g = _vsub(_vmul(m, w), s)
                    twice = _vfma(w, _vsub(g, s), twice)
                    if k < c:
                        _vstore(ua, k * LANES, _vfma(_vsplat(U[j, k]), w, _vload(ua, k * LANES)))
                    _vstore(linear, o, _vsub(w, _vmul(e, g)))
            _vstore(loss, (grp * steps + t) * LANES, _vmul(_vsplat(0.5), twice))
            for i in range(c):
                _vstore(u, ((grp * steps + t) * c + i) * LANES, _vload(ua, i * LANES))


# ---------------------------------------------------------------------------
# Packing and the public API.


def _output_basis(V_obs: np.ndarray) -> np.ndarray:
    """An orthogonal ``p×p`` matrix whose first ``c`` columns are ``V_obs``."""
    p, c = V_obs.shape
    basis = np.linalg.qr(V_obs, mode="complete")[0] if c else np.eye(p)
    basis[:, :c] = V_obs
    return basis


def _pack(runs: np.ndarray, groups: int, shape: tuple[int, ...]) -> np.ndarray:
    """``(R, a, b)`` runs → zero-padded ``(groups, *shape, LANES)`` lanes."""
    out = np.zeros((groups * LANES, *shape))
    out[(slice(0, runs.shape[0]), *(slice(0, n) for n in runs.shape[1:]))] = runs
    out = out.reshape(groups, LANES, *shape)
    return np.ascontiguousarray(np.moveaxis(out, 1, -1))


def _unpack(lanes: np.ndarray, runs: int, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_pack`: ``(runs, *shape)``, padding dropped."""
    flat = np.moveaxis(lanes, -1, 1).reshape(lanes.shape[0] * LANES, *lanes.shape[1:-1])
    return flat[(slice(0, runs), *(slice(0, n) for n in shape))].copy()


def _padded(n: int, multiple: int) -> int:
    return n + (-n) % multiple


class Sweep:
    """A batch of GD runs of one depth and width, packed for the compiled kernel.

    Parameters
    ----------
    problem : EigenProblem
        The dataset in the eigenbasis of Σx (only ``mu``, ``Q``, ``S``, ``yy``,
        ``U_obs`` and ``V_obs`` are used).
    layers0 : sequence of R lists of arrays
        Initial layers of each run in the original input basis, as for
        :class:`lindyn.engines.NumpyEngine`: ``W_1`` (d×r), ``W_l`` (r×r), ``W_L`` (r×p);
        one ``d×p`` matrix for depth 1.
    etas : sequence of R floats
        Step size of each run.

    Notes
    -----
    The state is the current iterate ``t`` (:attr:`step`). Runs are packed in
    ``ceil(R / LANES)`` groups; a partly filled group costs as much as a full
    one, so sweeps of a multiple of :data:`LANES` runs use the machine best.
    """

    def __init__(
        self,
        problem: EigenProblem,
        layers0: Sequence[Sequence[np.ndarray]],
        etas: Sequence[float],
    ) -> None:
        R = len(layers0)
        if R == 0:
            raise ValueError("a sweep needs at least one run")
        self.depth = len(layers0[0])
        if self.depth < 1 or any(len(run) != self.depth for run in layers0):
            raise ValueError("every run must have the same number of layers (>= 1)")
        eta = np.asarray(etas, dtype=np.float64)
        if eta.shape != (R,):
            raise ValueError(f"need one step size per run: {R} runs, eta of shape {eta.shape}")
        d, p = problem.S.shape
        shapes = [np.shape(layer) for layer in layers0[0]]
        width = shapes[0][1] if len(shapes[0]) == 2 else 0
        if shapes != layer_shapes(d, p, self.depth, width):
            raise ValueError(f"layers of shapes {shapes} are not a network from R^{d} to R^{p}")
        for run in layers0:
            if [np.shape(layer) for layer in run] != shapes:
                raise ValueError("every run must have the same layer shapes")
        self.problem = problem
        self.runs = R
        self.width = width if self.depth > 1 else None
        self.step = 0
        self.groups = -(-R // LANES)
        self._V = _output_basis(problem.V_obs)
        dp, pp = _padded(d, ROWS), _padded(p, 2)
        self._mu = np.zeros(dp)
        self._mu[:d] = problem.mu
        self._S = np.zeros((dp, pp))
        self._S[:d, :p] = problem.S @ self._V
        self._U = np.zeros((dp, problem.U_obs.shape[1]))
        self._U[:d] = problem.U_obs
        self._eta = _pack(eta[:, None, None], self.groups, (1, 1)).reshape(self.groups, LANES)

        first = np.stack([problem.Q.T @ np.asarray(run[0], dtype=np.float64) for run in layers0])
        if self.depth == 1:
            self._first = _pack(first @ self._V, self.groups, (dp, pp))
            return
        r = self.width
        self._first = _pack(first, self.groups, (dp, r))
        mids = np.zeros((R, self.depth - 2, r, r))
        for i, run in enumerate(layers0):
            mids[i] = np.reshape(run[1:-1], mids.shape[1:])
        self._mids = _pack(mids, self.groups, (self.depth - 2, r, r))
        last = np.stack([np.asarray(run[-1], dtype=np.float64) for run in layers0]) @ self._V
        self._last = _pack(last, self.groups, (r, pp))

    def advance(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Take ``steps`` GD steps; return the observables of the iterates left behind.

        Parameters
        ----------
        steps : int
            Number of steps.

        Returns
        -------
        loss : (R, steps) array
            Loss of iterates ``t, …, t + steps − 1`` (``t`` = :attr:`step` before the call).
        u : (R, steps, c) array
            ``u_i = U_iᵀ W V_i`` of the same iterates.
        """
        if int(steps) != steps or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        c = self._U.shape[1]
        loss = np.empty((self.groups, int(steps), LANES))
        u = np.empty((self.groups, int(steps), c, LANES))
        # Threads take groups one at a time: on a busy machine a descheduled
        # thread then delays one group, not half of them. No more threads than
        # groups: waking an idle thread can cost milliseconds on a loaded machine.
        threads = numba.get_num_threads()
        numba.set_num_threads(min(threads, self.groups))
        try:
            with numba.parallel_chunksize(1):
                if self.depth == 1:
                    _advance_linear(self._mu, self._S, self._U, self._first, self._eta, loss, u)
                else:
                    _advance_deep(
                        self._mu,
                        self._S,
                        self._U,
                        self._first,
                        self._mids,
                        self._last,
                        self._eta,
                        loss,
                        u,
                    )
        finally:
            numba.set_num_threads(threads)
        self.step += int(steps)
        loss = _unpack(loss, self.runs, (int(steps),)) + 0.5 * self.problem.yy
        return loss, _unpack(u, self.runs, (int(steps), c))

    def products(self) -> np.ndarray:
        """Products ``W(t)`` (R, d, p) in the working input basis, as in :mod:`lindyn.gd`."""
        d, p = self.problem.S.shape
        first = _unpack(self._first, self.runs, self._first.shape[1:3])
        if self.depth == 1:
            W = first
        else:
            W = first @ self._rest()
        return W[:, :d, :p] @ self._V.T

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        """Loss (R,) and ``u`` (R, c) of the current iterate (computed with numpy)."""
        W = self.products()
        u = np.einsum("ji,rjk,ki->ri", self.problem.U_obs, W, self.problem.V_obs)
        return self.problem.loss(W), u

    def layers(self) -> list[list[np.ndarray]]:
        """Each run's current layers in the original input and output bases."""
        d, p = self.problem.S.shape
        first = _unpack(self._first, self.runs, self._first.shape[1:3])[:, :d]
        if self.depth == 1:
            return [[self.problem.Q @ W[:, :p] @ self._V.T] for W in first]
        mids = _unpack(self._mids, self.runs, self._mids.shape[1:4])
        last = _unpack(self._last, self.runs, self._last.shape[1:3])[:, :, :p] @ self._V.T
        return [[self.problem.Q @ first[i], *mids[i], last[i]] for i in range(self.runs)]

    def subset(self, keep: np.ndarray) -> Sweep:
        """The sweep with only the runs ``keep`` (indices or a boolean mask), state copied exactly.

        Runs are repacked into ``ceil(len(keep) / LANES)`` groups, so stopped runs
        stop costing work; lanes never mix, so a run's iterates are the same bits
        whichever runs share its groups.
        """
        keep = np.arange(self.runs)[keep]
        out = copy.copy(self)
        out.runs = keep.size
        out.groups = -(-keep.size // LANES)

        def repack(lanes: np.ndarray) -> np.ndarray:
            shape = lanes.shape[1:-1]
            return _pack(_unpack(lanes, self.runs, shape)[keep], out.groups, shape)

        out._eta = repack(self._eta)
        out._first = repack(self._first)
        if self.depth > 1:
            out._mids = repack(self._mids)
            out._last = repack(self._last)
        return out

    def _rest(self) -> np.ndarray:
        """``W_2⋯W_L`` (R, r, p_even) in the rotated output basis."""
        P = _unpack(self._last, self.runs, self._last.shape[1:3])
        mids = _unpack(self._mids, self.runs, self._mids.shape[1:4])
        for i in range(self.depth - 3, -1, -1):
            P = mids[:, i] @ P
        return P


@dataclass
class SweepResult:
    """Trajectories of a sweep (leading axis of every array: run).

    Attributes
    ----------
    layers : list of lists of arrays
        Each run's layers at the last step, in the original bases.
    loss : (R, steps + 1) array
        Loss at steps ``0..steps``.
    u : (R, steps + 1, c) array
        ``u_i(t)`` at steps ``0..steps``.
    """

    layers: list[list[np.ndarray]]
    loss: np.ndarray
    u: np.ndarray


def fast_sweep(
    problem: EigenProblem,
    layers0: Sequence[Sequence[np.ndarray]],
    etas: Sequence[float],
    steps: int,
) -> SweepResult:
    """Run ``steps`` GD steps of every run of a sweep with the compiled kernel.

    Parameters
    ----------
    problem : EigenProblem
        The dataset in the eigenbasis of Σx.
    layers0 : sequence of R lists of arrays
        Initial layers of each run, in the original input basis.
    etas : sequence of R floats
        Step size of each run.
    steps : int
        Number of steps (no stopping rule: diverging runs fill with inf/NaN).

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> from lindyn.datasets import load_dataset
    >>> from lindyn.init import init_layers
    >>> from lindyn.stats import dataset_stats
    >>> data = load_dataset("commuting", d=6, p=3, n=50)
    >>> stats = dataset_stats(data.X, data.Y)
    >>> runs = [init_layers(stats, 2, 3, 1.0, "random", seed) for seed in range(4)]
    >>> result = fast_sweep(EigenProblem.from_stats(stats), runs, [0.1] * 4, 100)
    >>> result.u.shape
    (4, 101, 3)
    """
    sweep = Sweep(problem, layers0, etas)
    loss, u = sweep.advance(steps)
    last_loss, last_u = sweep.observe()
    return SweepResult(
        layers=sweep.layers(),
        loss=np.concatenate([loss, last_loss[:, None]], axis=1),
        u=np.concatenate([u, last_u[:, None]], axis=1),
    )
