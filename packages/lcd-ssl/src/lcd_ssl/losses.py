"""The multi-crop DINO loss and the Barlow Twins term, with per-replica teacher centers.

Notation: ``V_s`` student views (2 global + local crops), ``V_t = 2`` teacher views (the global
crops), ``B`` images per process, ``D = out_dim``. Outputs are crop-major: rows ``[v*B, (v+1)*B)``
belong to view ``v``. The loss uses every (teacher view t, student view s) pair with ``s != t``.

DINO (Caron et al. 2021): ``H(softmax((t - c) / τ_t), softmax(s / τ_s))`` averaged over pairs and
images, with centers ``c`` (EMA of teacher means) and sharpening ``τ_t < τ_s``.

Barlow Twins term in the form of Haslum et al. 2023 ("Metadata-guided Consistency Learning for High
Content Images"): for each pair, the cross-correlation ``C = BN(t - c)ᵀ BN(s) / N`` of the batch-
normalized teacher-centered logits and student logits, and
``(1 - λ) · mean_i (C_ii - 1)² + λ · mean_{i≠j} C_ij²`` (λ = 0.5), averaged over pairs. Means, not
the sums of Zbontar et al. 2021 / lightly, so the term is O(1) and independent of ``D``.

Normalization of the sum (documented in the README): each term is divided by its value at the
non-informative start (DINO: ``ln D``, the cross-entropy of a uniform student; Barlow: ``1 - λ``,
its value for uncorrelated outputs), the two are weighted 1:1 (``barlow_weight``), and the sum is
multiplied back by ``ln D`` so the DINO part keeps exactly the gradients of plain DINO::

    loss = dino + barlow_weight * (ln D / (1 - λ)) * barlow

``ΣC_ij²`` is computed from the N×N Gram matrices (``‖AᵀB‖²_F = ⟨AAᵀ, BBᵀ⟩``), O(N²D) instead of
O(ND²): no D×D matrix is formed, which keeps the Barlow term cheap at D = 4096 and beyond.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .centers import ReplicaCenters
from .distributed import all_gather_grad, all_gather_nograd

BN_EPS = 1e-5


def pair_mask(n_teacher_views: int, n_student_views: int, device=None) -> torch.Tensor:
    """(V_t, V_s) boolean mask of the (teacher, student) view pairs used: all but the same view."""
    mask = torch.ones(n_teacher_views, n_student_views, dtype=torch.bool, device=device)
    idx = torch.arange(min(n_teacher_views, n_student_views), device=device)
    mask[idx, idx] = False
    return mask


def dino_cross_entropy(student_logp: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Mean over valid pairs and images of ``-Σ_d q_t · log p_s``.

    Parameters
    ----------
    student_logp
        (V_s, B, D) log-softmax of the tempered student outputs.
    teacher_probs
        (V_t, B, D) sharpened, centered teacher probabilities (no gradient).
    """
    ce = -torch.einsum("tbd,sbd->ts", teacher_probs, student_logp) / student_logp.shape[1]
    mask = pair_mask(teacher_probs.shape[0], student_logp.shape[0], device=ce.device)
    return ce[mask].mean()


def batch_normalize(z: torch.Tensor, eps: float = BN_EPS) -> torch.Tensor:
    """Standardize each feature over the batch (dim -2), biased variance, as BatchNorm1d(affine=False)."""
    mean = z.mean(dim=-2, keepdim=True)
    var = z.var(dim=-2, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


def barlow_term(teacher_z: torch.Tensor, student_z: torch.Tensor, *, lambd: float = 0.5) -> torch.Tensor:
    """Haslum-style Barlow Twins term averaged over the valid (teacher, student) view pairs.

    Parameters
    ----------
    teacher_z
        (V_t, N, D) teacher-centered logits of the whole (global) batch.
    student_z
        (V_s, N, D) student logits.
    lambd
        Weight λ of the off-diagonal term; the diagonal gets 1 - λ.
    """
    n, d = student_z.shape[1], student_z.shape[2]
    dtype = torch.promote_types(student_z.dtype, torch.float32)  # bf16 in, fp32 math; fp64 kept
    tn = batch_normalize(teacher_z.to(dtype))
    sn = batch_normalize(student_z.to(dtype))
    diag = torch.einsum("tni,sni->tsi", tn, sn) / n  # C_ii per pair: (V_t, V_s, D)
    on = ((diag - 1.0) ** 2).mean(dim=-1)
    gram_t = torch.einsum("tnd,tmd->tnm", tn, tn)
    gram_s = torch.einsum("snd,smd->snm", sn, sn)
    total_sq = torch.einsum("tnm,snm->ts", gram_t, gram_s) / (n * n)  # Σ_ij C_ij² per pair
    off = (total_sq - (diag**2).sum(dim=-1)) / (d * (d - 1))
    per_pair = (1.0 - lambd) * on + lambd * off
    mask = pair_mask(tn.shape[0], sn.shape[0], device=per_pair.device)
    return per_pair[mask].mean()


class MultiCropLoss(nn.Module):
    """DINO (+ Barlow) loss over multi-crop outputs, owning the per-replica teacher centers.

    Parameters
    ----------
    out_dim
        Head output dimension D.
    n_replicas
        Number of teacher centers (1 unless cross-batch).
    student_temp, center_momentum
        DINO temperatures / center EMA momentum (the teacher temperature is passed per step).
    use_barlow, barlow_lambda, barlow_weight
        Barlow term switch, its λ and its weight after normalization (see module docstring).
    """

    def __init__(
        self,
        out_dim: int,
        *,
        n_replicas: int = 1,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        use_barlow: bool = False,
        barlow_lambda: float = 0.5,
        barlow_weight: float = 1.0,
    ):
        super().__init__()
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.use_barlow = use_barlow
        self.barlow_lambda = barlow_lambda
        self.barlow_scale = barlow_weight * math.log(out_dim) / (1.0 - barlow_lambda)
        self.centers = ReplicaCenters(n_replicas, out_dim, momentum=center_momentum)

    def dino_terms(
        self,
        student_out: torch.Tensor,
        teacher_out: torch.Tensor,
        teacher_replicas: torch.Tensor,
        *,
        teacher_temp: float,
        n_student_views: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The DINO term of this process's rows, and what the Barlow term and monitoring need.

        Parameters
        ----------
        student_out, teacher_out, teacher_replicas, teacher_temp, n_student_views
            As in :meth:`forward`.

        Returns
        -------
        tuple
            ``student`` (V_s, B, D) float logits (with gradient), ``centered`` (2 * B, D) teacher
            logits minus their centers, ``probs`` (2, B, D) teacher targets, ``dino`` (scalar).
        """
        b = teacher_out.shape[0] // 2
        student = student_out.float().reshape(n_student_views, b, -1)
        centered = self.centers.center(teacher_out.detach().float(), teacher_replicas)
        probs = F.softmax(centered / teacher_temp, dim=-1).reshape(2, b, -1)
        dino = dino_cross_entropy(F.log_softmax(student / self.student_temp, dim=-1), probs)
        return student, centered, probs, dino

    def forward(
        self,
        student_out: torch.Tensor,
        teacher_out: torch.Tensor,
        teacher_replicas: torch.Tensor,
        *,
        teacher_temp: float,
        n_student_views: int,
        update_centers: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Compute the loss terms, then update the centers with this batch's teacher outputs.

        Parameters
        ----------
        student_out
            (V_s * B, D) student head outputs (crop-major).
        teacher_out
            (2 * B, D) teacher head outputs of the two global crops (no gradient).
        teacher_replicas
            (2 * B,) replica index of each teacher row (all zeros with a single center).
        teacher_temp
            Sharpening temperature for this step.

        Returns
        -------
        dict
            ``loss`` (to backpropagate), ``dino``, ``barlow`` (raw terms, detached), ``teacher_probs``
            (V_t, B, D) for monitoring.
        """
        b = teacher_out.shape[0] // 2
        student, centered, probs, dino = self.dino_terms(
            student_out,
            teacher_out,
            teacher_replicas,
            teacher_temp=teacher_temp,
            n_student_views=n_student_views,
        )
        teacher_out = teacher_out.detach().float()
        loss = dino
        barlow = torch.zeros((), device=dino.device)
        if self.use_barlow:
            # the Barlow term's batch statistics must be those of the global batch under DDP
            t_all = all_gather_nograd(centered.reshape(2, b, -1).transpose(0, 1)).transpose(0, 1)
            s_all = all_gather_grad(student.transpose(0, 1)).transpose(0, 1)
            barlow = barlow_term(t_all, s_all, lambd=self.barlow_lambda)
            loss = dino + self.barlow_scale * barlow
        if update_centers:
            self.centers.update(teacher_out, teacher_replicas)
        return {"loss": loss, "dino": dino.detach(), "barlow": barlow.detach(), "teacher_probs": probs}
