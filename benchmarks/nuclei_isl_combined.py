"""Issue 17: ISL phase z-stack vs DAPI with 0.4.0's options: combined defocus channels and the DT split.

The 16 fields of 256² and the DAPI reference of ``nuclei_defocus.py`` (``nuclei_from_stain``, one
threshold and diameter for the whole image). Channels, computed on the 1024² image: the in-focus
plane z06; the TIE phase of all 13 planes and of z03/z06/z09 (highpass 64); two combinations of
multi-plane evidence: the z-scored sum of the TIE phase and the defocus contrast of all 13 planes
(sign of the defocus contrast set by its correlation with the TIE phase), and the z-scored mean of
the TIE phases of the three spans 0/12, 3/9, 5/7. Counter grid per channel: diameter {20, 12, 16, 24}
x polarity {auto, bright, dark} x floor {6, 4, 8, 2} (phase 1's unit, as ``nuclei_defocus.py``) x
Otsu x ``split_depth`` {0, 0.5} = 96 options. Leave-one-field-out choice (MAE or CCC) per channel and
pooled over channels (the channel is a choice too); per-field errors printed.

Usage: ``python benchmarks/nuclei_isl_combined.py``
"""

import sys
import time

sys.path.insert(0, "benchmarks")
import numpy as np
from _nuclei_common import field_metrics, fmt, grid, grid_fields, load_isl, loo_select, summarize
from lcd_nuclei.classical import classical_nuclei
from lcd_nuclei.defocus import defocus_contrast
from lcd_nuclei.stain import estimate_diameter, nuclei_from_stain, stain_threshold
from lcd_nuclei.tie import tie_phase
from skimage.filters import gaussian

planes, dapi = load_isl()
threshold = stain_threshold(dapi)
diameter = estimate_diameter(gaussian(dapi, sigma=1.0, preserve_range=True) > threshold)
fields = grid_fields(dapi.shape, 4)
refs = [nuclei_from_stain(dapi[f], threshold=threshold, diameter=diameter) for f in fields]
z = np.arange(13, dtype=float) - 6.0


def z_(c):
    return (c - c.mean()) / c.std()


tie13 = tie_phase(planes, z, highpass=64)
dfc13 = defocus_contrast(planes, z)
sign = np.sign(np.corrcoef(tie13.ravel(), dfc13.ravel())[0, 1])
ties = [
    tie_phase(planes[[a, 6, b]], np.array([a, 6, b], float) - 6, highpass=64)
    for a, b in ((0, 12), (3, 9), (5, 7))
]
chans = {
    "z06": planes[6],
    "TIE all 13": tie13,
    "TIE 3/9": ties[1],
    "TIE+defocus all 13 (z-scored sum)": z_(tie13) + sign * z_(dfc13),
    "TIE of 3 spans (z-scored mean)": sum(z_(t) for t in ties) / 3,
}
print("sign of corr(TIE13, defocus13)", sign, flush=True)
G = grid(
    diameter=[20, 12, 16, 24],
    polarity=["auto", "bright", "dark"],
    floor=[6.0, 4.0, 8.0, 2.0],
    threshold_method=["otsu"],
    floor_unit=["mad"],
    split_depth=[0.0, 0.5],
)
allm, alll = [], []
for name, ch in chans.items():
    t0 = time.time()
    m = [
        [field_metrics(classical_nuclei(ch[f], **o)["labels"], r) for f, r in zip(fields, refs, strict=True)]
        for o in G
    ]
    allm += m
    alll += [(name, o) for o in G]
    s0 = [i for i, o in enumerate(G) if o["split_depth"] == 0]
    print(f"{name:36s} fixed {fmt(summarize(m[0]))} [{time.time() - t0:.0f}s]")
    for c in ("mae", "ccc"):
        print(f"{'':36s} LOFO {c} split chosen {fmt(summarize(loo_select(m, c)[1]))}")
        print(
            f"{'':36s} LOFO {c} split 0      {fmt(summarize(loo_select([m[i] for i in s0], c)[1]))}",
            flush=True,
        )
for label, keep in {
    "pooled, all 5 channels, split chosen": lambda n, o: True,
    "pooled, split 0": lambda n, o: o["split_depth"] == 0,
    "pooled, without the 2 combined channels, split 0": lambda n, o: (
        o["split_depth"] == 0 and "z-scored" not in n
    ),
    "pooled, without the 2 combined channels, split chosen": lambda n, o: "z-scored" not in n,
}.items():
    idx = [i for i, (n, o) in enumerate(alll) if keep(n, o)]
    for c in ("mae", "ccc"):
        ch, held = loo_select([allm[i] for i in idx], c)
        print(f"{label:50s} LOFO {c}: {fmt(summarize(held))}  err {[h['pred'] - h['ref'] for h in held]}")
        print("   choices", sorted({alll[idx[j]][0] for j in ch}))
