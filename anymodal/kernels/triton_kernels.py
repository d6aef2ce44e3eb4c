"""Triton kernel sources of :mod:`anymodal.kernels` (plain functions, not yet jitted).

They are decorated on first use by :func:`anymodal.kernels.triton_common.build` (this
module is itself imported only when the Triton path runs, so importing
:mod:`anymodal.kernels` never imports Triton). Each kernel is self-contained, which makes
them longer than this project's functions usually are: under Triton's interpreter every
call of a jitted function (a helper, or library functions such as ``tl.zeros``)
re-patches ``triton.language``, a cost paid in every iteration of the inner loops, so the
shared tile code is written out in each kernel and ``tl.full`` replaces ``tl.zeros``.
Roles and formulas are described in :mod:`anymodal.kernels.logsumexp_triton` and
:mod:`anymodal.kernels.topk_triton`.

Operands of ``tl.dot`` are cast to ``DOT_DTYPE``: the input dtype on a GPU, float32 for
bfloat16 under the interpreter, whose ``tl.dot`` multiplies the raw uint16 storage of
bfloat16 (observed with Triton 3.6); values are rounded to the input dtype first, so the
numbers match the GPU's.

Index arithmetic that can exceed 2**31 (row * width for ``N * N_1`` effective anchors)
is done in int64.
"""

import triton.language as tl

# Globals read by a kernel must be constexpr for the compiler.
LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)


def mip_lse_fwd(
    e1_ptr, e2_ptr, rows_ptr, cols_ptr, scale_ptr, out_ptr,
    n_rows, n_cols, dim, group, n_row_blocks,
    HAS_E: tl.constexpr, HAS_E2: tl.constexpr, REDUCE_ROWS: tl.constexpr,
    ONE_D: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """Log-sum-exp of each (effective anchor, row block) over every column."""
    pid_e = tl.program_id(0)
    pid_r = tl.program_id(1)
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    r_ok = offs_r < n_rows
    row_base = offs_r.to(tl.int64) * dim
    offs_dd = tl.arange(0, BLOCK_D)
    e_base1 = (pid_e // group).to(tl.int64) * dim
    e_base2 = (pid_e % group).to(tl.int64) * dim
    scale2 = tl.load(scale_ptr) * LOG2E  # logits in base 2
    m_i = tl.full([BLOCK_R], float("-inf"), tl.float32)
    l_i = tl.full([BLOCK_R], 0.0, tl.float32)
    if ONE_D:  # the whole width fits one tile: modulate the rows once
        d_ok = offs_dd < dim
        u = tl.load(
            rows_ptr + row_base[:, None] + offs_dd[None, :],
            mask=r_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        if HAS_E:
            e = tl.load(e1_ptr + e_base1 + offs_dd, mask=d_ok, other=0.0).to(tl.float32)
            if HAS_E2:
                e = e * tl.load(e2_ptr + e_base2 + offs_dd, mask=d_ok, other=0.0).to(tl.float32)
            u = (u.to(tl.float32) * e[None, :]).to(rows_ptr.dtype.element_ty)
    for c0 in range(0, n_cols, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        c_ok = offs_c < n_cols
        col_base = offs_c.to(tl.int64) * dim
        acc = tl.full([BLOCK_R, BLOCK_C], 0.0, tl.float32)
        if ONE_D:
            v = tl.load(
                cols_ptr + col_base[:, None] + offs_dd[None, :],
                mask=c_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            acc = tl.dot(u.to(DOT_DTYPE), tl.trans(v.to(DOT_DTYPE)), acc, input_precision=PRECISION)
        else:
            for d0 in range(0, dim, BLOCK_D):
                offs_d = d0 + offs_dd
                dk_ok = offs_d < dim
                ud = tl.load(
                    rows_ptr + row_base[:, None] + offs_d[None, :],
                    mask=r_ok[:, None] & dk_ok[None, :],
                    other=0.0,
                )
                if HAS_E:
                    ed = tl.load(e1_ptr + e_base1 + offs_d, mask=dk_ok, other=0.0).to(tl.float32)
                    if HAS_E2:
                        ed = ed * tl.load(e2_ptr + e_base2 + offs_d, mask=dk_ok, other=0.0).to(
                            tl.float32
                        )
                    ud = (ud.to(tl.float32) * ed[None, :]).to(rows_ptr.dtype.element_ty)
                vd = tl.load(
                    cols_ptr + col_base[:, None] + offs_d[None, :],
                    mask=c_ok[:, None] & dk_ok[None, :],
                    other=0.0,
                )
                acc = tl.dot(
                    ud.to(DOT_DTYPE), tl.trans(vd.to(DOT_DTYPE)), acc, input_precision=PRECISION
                )
        x = tl.where(c_ok[None, :], acc * scale2, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(x, axis=1))
        l_i = l_i * tl.exp2(m_i - m_new) + tl.sum(tl.exp2(x - m_new[:, None]), axis=1)
        m_i = m_new
    lse = (m_i + tl.log2(l_i)) * LN2  # back to natural log
    if REDUCE_ROWS:
        lse = tl.where(r_ok, lse, float("-inf"))
        top = tl.max(lse, axis=0)
        total = top + tl.log(tl.sum(tl.exp(lse - top), axis=0))
        tl.store(out_ptr + pid_e.to(tl.int64) * n_row_blocks + pid_r, total)
    else:
        tl.store(out_ptr + offs_r, lse, mask=r_ok)


def mip_lse_all_fwd(
    e1_ptr, e2_ptr, rows_ptr, cols_ptr, scale_ptr, row_out_ptr, col_m_ptr, col_l_ptr,
    n_e, n_rows, n_cols, dim, group, e_split, n_row_blocks,
    HAS_E: tl.constexpr, HAS_E2: tl.constexpr, ONE_D: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """Every axis's log-sum-exp at once (``mip_logsumexp_all``), one traversal.

    A program owns a block of rows and the effective anchors pid_s, pid_s + e_split, ...;
    for each it streams the columns once and keeps two running log-sum-exps (base 2): per
    row over the columns (written to row_out[e, row] at the end) and per column over its
    rows and effective anchors (in its own scratch row of col_m / col_l, so no two
    programs touch the same numbers).
    """
    pid_r = tl.program_id(0)
    pid_s = tl.program_id(1)
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    r_ok = offs_r < n_rows
    row_base = offs_r.to(tl.int64) * dim
    offs_dd = tl.arange(0, BLOCK_D)
    scale2 = tl.load(scale_ptr) * LOG2E  # logits in base 2
    scratch = (pid_s * n_row_blocks + pid_r).to(tl.int64) * n_cols
    for e_idx in range(pid_s, n_e, e_split):
        e_base1 = tl.cast(e_idx // group, tl.int64) * dim
        e_base2 = tl.cast(e_idx % group, tl.int64) * dim
        m_i = tl.full([BLOCK_R], float("-inf"), tl.float32)
        l_i = tl.full([BLOCK_R], 0.0, tl.float32)
        if ONE_D:  # the whole width fits one tile: modulate the rows once per anchor
            d_ok = offs_dd < dim
            u = tl.load(
                rows_ptr + row_base[:, None] + offs_dd[None, :],
                mask=r_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            if HAS_E:
                e = tl.load(e1_ptr + e_base1 + offs_dd, mask=d_ok, other=0.0).to(tl.float32)
                if HAS_E2:
                    e = e * tl.load(e2_ptr + e_base2 + offs_dd, mask=d_ok, other=0.0).to(tl.float32)
                u = (u.to(tl.float32) * e[None, :]).to(rows_ptr.dtype.element_ty)
        for c0 in range(0, n_cols, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            c_ok = offs_c < n_cols
            col_base = offs_c.to(tl.int64) * dim
            acc = tl.full([BLOCK_R, BLOCK_C], 0.0, tl.float32)
            if ONE_D:
                v = tl.load(
                    cols_ptr + col_base[:, None] + offs_dd[None, :],
                    mask=c_ok[:, None] & d_ok[None, :],
                    other=0.0,
                )
                acc = tl.dot(
                    u.to(DOT_DTYPE), tl.trans(v.to(DOT_DTYPE)), acc, input_precision=PRECISION
                )
            else:
                for d0 in range(0, dim, BLOCK_D):
                    offs_d = d0 + offs_dd
                    dk_ok = offs_d < dim
                    ud = tl.load(
                        rows_ptr + row_base[:, None] + offs_d[None, :],
                        mask=r_ok[:, None] & dk_ok[None, :],
                        other=0.0,
                    )
                    if HAS_E:
                        ed = tl.load(e1_ptr + e_base1 + offs_d, mask=dk_ok, other=0.0).to(
                            tl.float32
                        )
                        if HAS_E2:
                            ed = ed * tl.load(e2_ptr + e_base2 + offs_d, mask=dk_ok, other=0.0).to(
                                tl.float32
                            )
                        ud = (ud.to(tl.float32) * ed[None, :]).to(rows_ptr.dtype.element_ty)
                    vd = tl.load(
                        cols_ptr + col_base[:, None] + offs_d[None, :],
                        mask=c_ok[:, None] & dk_ok[None, :],
                        other=0.0,
                    )
                    acc = tl.dot(
                        ud.to(DOT_DTYPE), tl.trans(vd.to(DOT_DTYPE)), acc, input_precision=PRECISION
                    )
            # Rows: padding columns are -inf; padding rows stay finite and are not stored.
            x = tl.where(c_ok[None, :], acc * scale2, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(x, axis=1))
            l_i = l_i * tl.exp2(m_i - m_new) + tl.sum(tl.exp2(x - m_new[:, None]), axis=1)
            m_i = m_new
            # Columns: padding rows are -inf; a padding column gets a finite dummy maximum.
            xc = tl.where(r_ok[:, None], x, float("-inf"))
            c_max = tl.where(c_ok, tl.max(xc, axis=0), 0.0)
            c_sum = tl.sum(tl.exp2(xc - c_max[None, :]), axis=0)
            old_m = tl.load(col_m_ptr + scratch + offs_c, mask=c_ok, other=float("-inf"))
            old_l = tl.load(col_l_ptr + scratch + offs_c, mask=c_ok, other=0.0)
            new_m = tl.maximum(old_m, c_max)
            new_l = old_l * tl.exp2(old_m - new_m) + c_sum * tl.exp2(c_max - new_m)
            tl.store(col_m_ptr + scratch + offs_c, new_m, mask=c_ok)
            tl.store(col_l_ptr + scratch + offs_c, new_l, mask=c_ok)
        lse = (m_i + tl.log2(l_i)) * LN2  # back to natural log
        tl.store(row_out_ptr + tl.cast(e_idx, tl.int64) * n_rows + offs_r, lse, mask=r_ok)


def mip_lse_bwd(  # noqa: C901 (one self-contained kernel: see the module docstring)
    e1_ptr, e2_ptr, rows_ptr, cols_ptr, scale_ptr, lse_ptr, g_ptr, lse2_ptr, g2_ptr,
    drows_ptr, de_ptr, ds_ptr,
    n_e, n_rows, n_cols, dim, group, e_split,
    HAS_E: tl.constexpr, HAS_E2: tl.constexpr, LSE_MODE: tl.constexpr,
    COMPUTE_DE: tl.constexpr, COMPUTE_DS: tl.constexpr, ONE_D: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DO: tl.constexpr, PRECISION: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """Gradients of the log-sum-exps: one launch per role (rows, or swapped, columns)."""
    # LSE_MODE: where the saved log-sum-exp lives. 0: one per effective anchor
    # (index e // group); 1: one per row (K = 1); 2: one per column (K = 1, swapped).
    # 3 and 4 (every axis at once, mip_logsumexp_all): the weight of a logit is
    # alpha * exp(s x - mu) + g_last * exp(s x - lse_last), with (mu, alpha) in lse_ptr /
    # g_ptr, one per (effective anchor, row of the row factor), and (lse_last, g_last) in
    # lse2_ptr / g2_ptr, one per row of the column factor; 3: rows are the row factor;
    # 4 (swapped): rows are the column factor.
    pid_r = tl.program_id(0)
    pid_o = tl.program_id(1)
    pid_s = tl.program_id(2)
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    r_ok = offs_r < n_rows
    row_base = offs_r.to(tl.int64) * dim
    offs_o = pid_o * BLOCK_DO + tl.arange(0, BLOCK_DO)  # output dims of this program
    o_ok = offs_o < dim
    offs_dd = tl.arange(0, BLOCK_D)
    scale = tl.load(scale_ptr)
    scale2 = scale * LOG2E
    acc_rows = tl.full([BLOCK_R, BLOCK_DO], 0.0, tl.float32)
    ds_acc = tl.full([BLOCK_R], 0.0, tl.float32)
    if COMPUTE_DE:
        rows_o = tl.load(
            rows_ptr + row_base[:, None] + offs_o[None, :],
            mask=r_ok[:, None] & o_ok[None, :],
            other=0.0,
        ).to(tl.float32)
    if LSE_MODE == 1:
        lse_r = tl.load(lse_ptr + offs_r, mask=r_ok, other=0.0) * LOG2E
        g_r = tl.load(g_ptr + offs_r, mask=r_ok, other=0.0)
    if LSE_MODE == 4:
        lse_r = tl.load(lse2_ptr + offs_r, mask=r_ok, other=0.0) * LOG2E
        g_r = tl.load(g2_ptr + offs_r, mask=r_ok, other=0.0)
    for e_idx in range(pid_s, n_e, e_split):
        e_base1 = tl.cast(e_idx // group, tl.int64) * dim
        e_base2 = tl.cast(e_idx % group, tl.int64) * dim
        if LSE_MODE == 0:
            lse_e = tl.load(lse_ptr + e_idx // group) * LOG2E
            g_e = tl.load(g_ptr + e_idx // group)
        if LSE_MODE == 3:
            e_rows = tl.cast(e_idx, tl.int64) * n_rows
            mu_r = tl.load(lse_ptr + e_rows + offs_r, mask=r_ok, other=0.0) * LOG2E
            alpha_r = tl.load(g_ptr + e_rows + offs_r, mask=r_ok, other=0.0)
        if ONE_D:
            d_ok = offs_dd < dim
            u = tl.load(
                rows_ptr + row_base[:, None] + offs_dd[None, :],
                mask=r_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            if HAS_E:
                e = tl.load(e1_ptr + e_base1 + offs_dd, mask=d_ok, other=0.0).to(tl.float32)
                if HAS_E2:
                    e = e * tl.load(e2_ptr + e_base2 + offs_dd, mask=d_ok, other=0.0).to(tl.float32)
                u = (u.to(tl.float32) * e[None, :]).to(rows_ptr.dtype.element_ty)
        t = tl.full([BLOCK_R, BLOCK_DO], 0.0, tl.float32)
        for c0 in range(0, n_cols, BLOCK_C):
            offs_c = c0 + tl.arange(0, BLOCK_C)
            c_ok = offs_c < n_cols
            col_base = offs_c.to(tl.int64) * dim
            x = tl.full([BLOCK_R, BLOCK_C], 0.0, tl.float32)
            if ONE_D:
                v = tl.load(
                    cols_ptr + col_base[:, None] + offs_dd[None, :],
                    mask=c_ok[:, None] & d_ok[None, :],
                    other=0.0,
                )
                x = tl.dot(u.to(DOT_DTYPE), tl.trans(v.to(DOT_DTYPE)), x, input_precision=PRECISION)
            else:
                for d0 in range(0, dim, BLOCK_D):
                    offs_d = d0 + offs_dd
                    dk_ok = offs_d < dim
                    ud = tl.load(
                        rows_ptr + row_base[:, None] + offs_d[None, :],
                        mask=r_ok[:, None] & dk_ok[None, :],
                        other=0.0,
                    )
                    if HAS_E:
                        ed = tl.load(e1_ptr + e_base1 + offs_d, mask=dk_ok, other=0.0).to(
                            tl.float32
                        )
                        if HAS_E2:
                            ed = ed * tl.load(e2_ptr + e_base2 + offs_d, mask=dk_ok, other=0.0).to(
                                tl.float32
                            )
                        ud = (ud.to(tl.float32) * ed[None, :]).to(rows_ptr.dtype.element_ty)
                    vd = tl.load(
                        cols_ptr + col_base[:, None] + offs_d[None, :],
                        mask=c_ok[:, None] & dk_ok[None, :],
                        other=0.0,
                    )
                    x = tl.dot(
                        ud.to(DOT_DTYPE), tl.trans(vd.to(DOT_DTYPE)), x, input_precision=PRECISION
                    )
            if LSE_MODE == 0:
                w = tl.exp2(x * scale2 - lse_e) * g_e
            elif LSE_MODE == 1:
                w = tl.exp2(x * scale2 - lse_r[:, None]) * g_r[:, None]
            elif LSE_MODE == 2:
                lse_c = tl.load(lse_ptr + offs_c, mask=c_ok, other=0.0) * LOG2E
                g_c = tl.load(g_ptr + offs_c, mask=c_ok, other=0.0)
                w = tl.exp2(x * scale2 - lse_c[None, :]) * g_c[None, :]
            elif LSE_MODE == 3:
                lse_c = tl.load(lse2_ptr + offs_c, mask=c_ok, other=0.0) * LOG2E
                g_c = tl.load(g2_ptr + offs_c, mask=c_ok, other=0.0)
                w = tl.exp2(x * scale2 - mu_r[:, None]) * alpha_r[:, None]
                w += tl.exp2(x * scale2 - lse_c[None, :]) * g_c[None, :]
            else:
                e_cols = tl.cast(e_idx, tl.int64) * n_cols
                mu_c = tl.load(lse_ptr + e_cols + offs_c, mask=c_ok, other=0.0) * LOG2E
                alpha_c = tl.load(g_ptr + e_cols + offs_c, mask=c_ok, other=0.0)
                w = tl.exp2(x * scale2 - mu_c[None, :]) * alpha_c[None, :]
                w += tl.exp2(x * scale2 - lse_r[:, None]) * g_r[:, None]
            w = tl.where(r_ok[:, None] & c_ok[None, :], w, 0.0)
            if COMPUTE_DS:
                ds_acc += tl.sum(w * x, axis=1)
            v_o = tl.load(
                cols_ptr + col_base[:, None] + offs_o[None, :],
                mask=c_ok[:, None] & o_ok[None, :],
                other=0.0,
            )
            w_in = w.to(rows_ptr.dtype.element_ty).to(DOT_DTYPE)
            t = tl.dot(w_in, v_o.to(DOT_DTYPE), t, input_precision=PRECISION)
        if HAS_E:
            e_o = tl.load(e1_ptr + e_base1 + offs_o, mask=o_ok, other=0.0).to(tl.float32)
            if HAS_E2:
                e_o = e_o * tl.load(e2_ptr + e_base2 + offs_o, mask=o_ok, other=0.0).to(tl.float32)
            acc_rows += t * e_o[None, :]
        else:
            acc_rows += t
        if COMPUTE_DE:
            de = tl.sum(rows_o * t, axis=0) * scale
            tl.atomic_add(de_ptr + tl.cast(e_idx, tl.int64) * dim + offs_o, de, mask=o_ok)
    tl.atomic_add(
        drows_ptr + row_base[:, None] + offs_o[None, :],
        acc_rows * scale,
        mask=r_ok[:, None] & o_ok[None, :],
    )
    if COMPUTE_DS:
        tl.atomic_add(ds_ptr, tl.sum(ds_acc, axis=0), mask=pid_o == 0)


def mip_topk_tiles(
    q_ptr, f1_ptr, f2_ptr, cols_ptr, val_ptr, idx_ptr,
    n_prefix, n_cols, dim, group, n_prefix_blocks,
    HAS_F2: tl.constexpr, ONE_D: tl.constexpr, BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_D: tl.constexpr, KP: tl.constexpr,
    PRECISION: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """Running top-k of the tuples of one query and one block of prefix tuples."""
    # One program: query pid_q against a block of prefix tuples p (row f1[p // group],
    # times f2[p % group] when HAS_F2), streaming the column factor; keeps the KP best
    # (score, flat tuple number p * n_cols + col) seen, in registers.
    pid_q = tl.program_id(0)
    pid_p = tl.program_id(1)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = offs_p < n_prefix
    f1_base = (offs_p // group).to(tl.int64) * dim
    f2_base = (offs_p % group).to(tl.int64) * dim
    q_base = pid_q.to(tl.int64) * dim
    offs_dd = tl.arange(0, BLOCK_D)
    slots = tl.arange(0, KP)
    best_v = tl.full([KP], float("-inf"), tl.float32)
    best_i = tl.full([KP], -1, tl.int64)
    if ONE_D:
        d_ok = offs_dd < dim
        u = tl.load(
            f1_ptr + f1_base[:, None] + offs_dd[None, :],
            mask=p_ok[:, None] & d_ok[None, :],
            other=0.0,
        ).to(tl.float32)
        if HAS_F2:
            u = u * tl.load(
                f2_ptr + f2_base[:, None] + offs_dd[None, :],
                mask=p_ok[:, None] & d_ok[None, :],
                other=0.0,
            ).to(tl.float32)
        qv = tl.load(q_ptr + q_base + offs_dd, mask=d_ok, other=0.0).to(tl.float32)
        u = (u * qv[None, :]).to(cols_ptr.dtype.element_ty)
    for c0 in range(0, n_cols, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        c_ok = offs_c < n_cols
        col_base = offs_c.to(tl.int64) * dim
        acc = tl.full([BLOCK_P, BLOCK_C], 0.0, tl.float32)
        if ONE_D:
            v = tl.load(
                cols_ptr + col_base[:, None] + offs_dd[None, :],
                mask=c_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            acc = tl.dot(u.to(DOT_DTYPE), tl.trans(v.to(DOT_DTYPE)), acc, input_precision=PRECISION)
        else:
            for d0 in range(0, dim, BLOCK_D):
                offs_d = d0 + offs_dd
                dk_ok = offs_d < dim
                ud = tl.load(
                    f1_ptr + f1_base[:, None] + offs_d[None, :],
                    mask=p_ok[:, None] & dk_ok[None, :],
                    other=0.0,
                ).to(tl.float32)
                if HAS_F2:
                    ud = ud * tl.load(
                        f2_ptr + f2_base[:, None] + offs_d[None, :],
                        mask=p_ok[:, None] & dk_ok[None, :],
                        other=0.0,
                    ).to(tl.float32)
                qd = tl.load(q_ptr + q_base + offs_d, mask=dk_ok, other=0.0).to(tl.float32)
                ud = (ud * qd[None, :]).to(cols_ptr.dtype.element_ty)
                vd = tl.load(
                    cols_ptr + col_base[:, None] + offs_d[None, :],
                    mask=c_ok[:, None] & dk_ok[None, :],
                    other=0.0,
                )
                acc = tl.dot(
                    ud.to(DOT_DTYPE), tl.trans(vd.to(DOT_DTYPE)), acc, input_precision=PRECISION
                )
        scores = tl.where(p_ok[:, None] & c_ok[None, :], acc, float("-inf"))
        flat = offs_p[:, None].to(tl.int64) * n_cols + offs_c[None, :]
        tile_max = tl.max(tl.max(scores, axis=1), axis=0)
        worst = tl.min(best_v, axis=0)
        # Move the tile's best entries into the running top-k while they beat its worst;
        # after the first tiles most tiles are skipped by this single comparison.
        while tile_max > worst:
            hit = tl.where(scores == tile_max, flat, 9223372036854775807)
            pick = tl.min(tl.min(hit, axis=1), axis=0)
            slot = tl.min(tl.where(best_v == worst, slots, KP), axis=0)
            best_v = tl.where(slots == slot, tile_max, best_v)
            best_i = tl.where(slots == slot, pick, best_i)
            scores = tl.where(flat == pick, float("-inf"), scores)
            tile_max = tl.max(tl.max(scores, axis=1), axis=0)
            worst = tl.min(best_v, axis=0)
    out = (pid_q.to(tl.int64) * n_prefix_blocks + pid_p) * KP + slots
    tl.store(val_ptr + out, best_v)
    tl.store(idx_ptr + out, best_i)
