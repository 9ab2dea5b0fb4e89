"""Training health metrics, the JSONL metrics log and the rich progress bar.

Collapse (Caron et al. 2021, Sec. 5.3; Chen & He 2021, SimSiam): with collapse to one prototype the
L2-normalized teacher outputs stop varying across images (per-dimension std -> 0, versus about
1/sqrt(d) for well-spread outputs); with collapse to the uniform distribution the teacher entropy
reaches ln(out_dim) and the DINO loss sits at ln(out_dim). Either way the mutual information between
image and teacher prototype (``teacher_mi``) goes to 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lcd_core import write_text


@torch.no_grad()
def teacher_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the teacher's sharpened distributions."""
    p = probs.float().flatten(0, -2)
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1).mean()


@torch.no_grad()
def teacher_mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """``H(mean_i p_i) - mean_i H(p_i)``: information the teacher's prototype carries about the image.

    0 under either collapse (every image gets the same distribution, uniform or peaked); up to
    ``ln(batch)`` when images get distinct, sharp assignments. Computed per global view, averaged.
    """
    p = probs.float()
    mean_p = p.mean(dim=-2)
    h_mean = -(mean_p * torch.log(mean_p.clamp_min(1e-30))).sum(-1).mean()
    return h_mean - teacher_entropy(p)


@torch.no_grad()
def normalized_std(outputs: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the batch std of L2-normalized outputs (healthy ~ 1/sqrt(d), collapse -> 0)."""
    z = F.normalize(outputs.float(), dim=-1)
    return z.std(dim=0).mean()


class MetricsLog:
    """Append-only JSONL of one record per step; on resume, records after the resumed step are dropped.

    Parameters
    ----------
    path
        ``metrics.jsonl`` of the run.
    resume_step
        The step the run resumes from (0: a new log).
    enabled
        ``False`` on ranks other than 0.
    """

    def __init__(self, path: Path, *, resume_step: int, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        kept = []
        if path.exists() and resume_step > 0:
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if rec.get("step", math.inf) <= resume_step:
                    kept.append(line)
        write_text(path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (a line of JSON).

        Parameters
        ----------
        record
            The step's metrics.
        """
        if self.enabled:
            with self.path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
