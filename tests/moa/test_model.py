"""Holdout mode: fit on one compound set, save without pickle, predict another set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lcd_core import InputError
from lcd_moa import MoAModel, MoASpec, ProbeSpec, fit_moa, predict_moa
from lcd_moa.condition_probes import fit_condition_probes


def _split(adata):
    comp = adata.obs["compound"]
    in_train = (comp == "DMSO") | comp.str[-1].astype(str).isin(["0", "1", "2", "3"])
    in_test = (comp == "DMSO") | ~in_train
    return adata[in_train.to_numpy()].copy(), adata[in_test.to_numpy()].copy()


def test_holdout_fit_save_load_predict(screen, activity, tmp_path):
    adata = screen(seed=9)
    train, test = _split(adata)
    act = activity(adata, 3.0)
    model = fit_moa(train, act, probe={"weights": "accuracy"}, seed=0)
    assert sorted(model.train_compounds) == sorted(set(train.obs["compound"]) - {"DMSO"})
    model.save(tmp_path / "model")
    # plain formats only: JSON metadata and an npz that loads without pickle
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["classes"] == ["MoA0", "MoA1", "MoA2", "MoA3", "DMSO"]
    with np.load(tmp_path / "model" / "model.npz", allow_pickle=False) as z:
        assert all(z[k].dtype == np.float64 for k in z.files)
    loaded = MoAModel.load(tmp_path / "model")
    direct = predict_moa(model, test, act)
    again = predict_moa(loaded, test, act)
    pd.testing.assert_frame_equal(direct.predictions, again.predictions)
    assert not direct.compounds["in_training"].any()
    final = direct.metrics.set_index("method").loc[direct.final_method]
    assert final["n_compounds"] == 8 and final["accuracy"] >= 0.85
    # the weights used are the model's inner-CV accuracies, one per condition
    w = model.conditions.set_index(["timepoint", "dose"])["weight"]
    used = direct.condition_probs.set_index(["timepoint", "dose"])["weight"]
    assert np.allclose(used.to_numpy(), w.loc[used.index].to_numpy())


def test_fit_uses_every_labeled_compound_like_the_engine(screen, activity):
    """fit_moa's probes equal probes fitted directly on all training compounds."""
    from lcd_moa.design import build_design

    adata = screen(n_moa=3, n_per_moa=5, seed=10)
    act = activity(adata, 3.0)
    model = fit_moa(adata, act)
    design = build_design(adata, act, MoASpec())
    probes, _ = fit_condition_probes(design, design.labels().index, design.labels(), ProbeSpec())
    assert set(probes) == set(model.probes)
    for c, p in probes.items():
        np.testing.assert_allclose(p.coef, model.probes[c].coef)


def test_predict_unlabeled_reordered_and_bad_features(screen, activity, tmp_path):
    adata = screen(n_moa=3, n_per_moa=5, seed=11)
    train, test = _split(adata)
    model = fit_moa(train, activity(adata, 3.0))
    labeled = predict_moa(model, test, activity(adata, 3.0))
    unlabeled = test.copy()
    del unlabeled.obs["moa"]
    reordered = unlabeled[:, unlabeled.var_names[::-1]].copy()
    result = predict_moa(model, reordered, activity(adata, 3.0))
    a = labeled.predictions.drop(columns=["moa", "correct"])
    b = result.predictions.drop(columns=["moa", "correct"])
    pd.testing.assert_frame_equal(a, b)
    assert "accuracy" not in result.metrics
    result.write(tmp_path / "out")  # works without labels (no confusion matrix)
    assert (tmp_path / "out" / "polypharmacology.parquet").is_file()
    with pytest.raises(InputError, match="11 model features are missing from the profiles"):
        predict_moa(model, test[:, :5].copy())


def test_condition_unknown_to_model_is_reported(screen, activity):
    adata = screen(n_moa=3, n_per_moa=5, seed=12)
    train, test = _split(adata)
    model = fit_moa(train, activity(adata, 3.0))
    test.obs["dose"] = test.obs["dose"].replace({10.0: 30.0})
    act = activity(test, 3.0)
    result = predict_moa(model, test, act)
    cond = result.conditions.set_index("dose")
    assert (cond.loc[30.0, "reason"] == "condition not in the model").all()
    assert not (result.condition_probs["dose"] == 30.0).any()


def test_polypharmacology_of_a_mixed_compound(screen, activity):
    """A new compound whose profile mixes two MoA directions shows both as its top-2 MoAs."""
    from lcd_moa import top_moas

    adata = screen(n_moa=4, n_per_moa=6, n_features=16, seed=13, effect=4.0)
    directions = adata.uns["directions"]
    model = fit_moa(adata, activity(adata, 3.0))
    rng = np.random.default_rng(0)
    rows, feats = [], []
    for t in (24, 48):
        for d in (3.0, 10.0):
            for _ in range(3):
                rows.append({"compound": "TAK-like", "timepoint": t, "dose": d})
                feats.append(3.0 * (directions[0] + directions[2]) / np.sqrt(2) + 0.3 * rng.normal(size=16))
    import anndata as ad

    new = ad.AnnData(
        np.asarray(feats),
        obs=pd.DataFrame(rows, index=[str(i) for i in range(len(rows))]),
        var=pd.DataFrame(index=adata.var_names),
    )
    result = predict_moa(model, new)
    top = top_moas(result.condition_probs, result.classes, ["timepoint", "dose"], k=2)
    assert len(top) == 8  # 4 conditions × 2 ranks
    for _, grp in top.groupby(["timepoint", "dose"]):
        assert set(grp["moa"]) == {"MoA0", "MoA2"}
        assert grp["probability"].is_monotonic_decreasing
    # naive oracle: sort each row's MoA probabilities by hand
    cp = result.condition_probs.iloc[0]
    moas = ["MoA0", "MoA1", "MoA2", "MoA3"]
    p = np.array([cp[f"p_{m}"] for m in moas])
    first = top.iloc[:2]
    assert first["moa"].tolist() == [moas[i] for i in np.argsort(-p)[:2]]
    np.testing.assert_allclose(first["probability"], np.sort(p / p.sum())[::-1][:2])


DATA = Path(__file__).parent / "data"


def test_model_records_its_specs(screen, activity, tmp_path):
    adata = screen(n_moa=3, n_per_moa=5, seed=15)
    spec = MoASpec(control="compound == 'DMSO'", dose_key="dose")
    probe = ProbeSpec(C=0.3, weights="wells", max_iter=500)
    model = fit_moa(adata, activity(adata, 3.0), spec, probe=probe, seed=4)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format"] == "lcd-moa-model/2"
    assert meta["spec"]["dose_key"] == "dose" and meta["spec"]["condition_keys"] == ["timepoint", "dose"]
    assert meta["probe"] == {**ProbeSpec().to_dict(), "C": 0.3, "weights": "wells", "max_iter": 500}
    loaded = MoAModel.load(tmp_path / "m")
    assert loaded.spec == spec and loaded.probe == probe and loaded.seed == 4
    mask = os.umask(0o022)
    os.umask(mask)
    for f in ("model.json", "model.npz"):  # lcd-core's rule: the mode open() gives (0.1.0 wrote 0600)
        assert (tmp_path / "m" / f).stat().st_mode & 0o777 == 0o666 & ~mask


def test_model_folder_of_lcd_moa_010_still_loads_and_predicts_the_same(screen, activity):
    """tests/moa/data/model_v010 and its predictions were written by lcd-moa 0.1.0 (C=0.5, accuracy
    weights) on this screen's training compounds; 0.2.0 reads the folder and predicts the same."""
    adata = screen(n_moa=3, n_per_moa=5, seed=11)
    _, test = _split(adata)
    model = MoAModel.load(DATA / "model_v010")
    assert model.probe == ProbeSpec(C=0.5, weights="accuracy") and model.spec == MoASpec(dose_key="dose")
    assert len(model.train_compounds) == 12
    got = predict_moa(model, test, activity(adata, 3.0)).predictions
    want = pd.read_csv(DATA / "model_v010_predictions.csv")
    assert len(got) == len(want) == 12
    pd.testing.assert_frame_equal(
        got[want.columns].reset_index(drop=True), want, rtol=1e-12, check_dtype=False
    )


def _corrupt(folder, tmp_path, name, content):
    import shutil

    target = tmp_path / name.replace("/", "_")
    shutil.copytree(folder, target)
    path = target / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return target


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.json", "{not json", r"model\.json: is not a valid JSON file"),
        ("model.npz", b"PK\x03\x04 truncated", r"model\.npz: is not a valid \.npz file"),
        ("model.json", '{"format": "other/1"}', r"model\.json: unknown model format 'other/1'"),
        ("model.json", None, r"model\.json: is not a usable lcd-moa model \(no 'classes' entry\)"),
        (
            "model.json",
            "probe",
            r"model\.json: is not a usable lcd-moa model \(ProbeSpec.weights: must be one of equal, wells",
        ),
        ("model.npz", "arrays", r"model\.npz: arrays \['c1_mean'"),
    ],
)
def test_corrupt_model_files_are_named_in_one_line(screen, activity, tmp_path, name, content, message):
    from lcd_core import CheckpointError, FileFormatError

    adata = screen(n_moa=3, n_per_moa=5, seed=16)
    model = fit_moa(adata, activity(adata, 3.0))
    folder = model.save(tmp_path / "model")
    meta = json.loads((folder / "model.json").read_text())
    if content is None:
        content = json.dumps({k: v for k, v in meta.items() if k != "classes"})
    elif content == "probe":
        content = json.dumps({**meta, "probe": {**meta["probe"], "weights": "votes"}})
    elif content == "arrays":
        with np.load(folder / "model.npz") as z:
            arrays = {k: z[k] for k in z.files if not k.startswith("c1_")}
        broken = tmp_path / "arrays"
        broken.mkdir()
        np.savez(broken / "model.npz", **arrays)
        content = (broken / "model.npz").read_bytes()
    bad = _corrupt(folder, tmp_path, name, content)
    with pytest.raises((FileFormatError, CheckpointError), match=message) as err:
        MoAModel.load(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_predict_reads_features_from_the_models_layer(screen, activity):
    """A model fitted on layers['signal'] is applied to that layer of new data (0.1.0 read X there)."""
    adata = screen(n_moa=3, n_per_moa=5, seed=17)
    adata.layers["signal"] = adata.X.copy()
    adata.X = np.random.default_rng(0).normal(size=adata.shape)  # X holds nothing
    train, test = _split(adata)
    act = activity(adata, 3.0)
    model = fit_moa(train, act, {"layer": "signal"})
    got = predict_moa(model, test, act)
    plain_train, plain_test = train.copy(), test.copy()
    plain_train.X, plain_test.X = train.layers["signal"], test.layers["signal"]
    want = predict_moa(fit_moa(plain_train, act), plain_test, act)
    pd.testing.assert_frame_equal(got.predictions, want.predictions)
    final = got.metrics.set_index("method").loc[got.final_method]
    assert final["accuracy"] >= 0.85


def test_predict_with_other_column_names(screen, activity):
    adata = screen(n_moa=3, n_per_moa=5, seed=18)
    train, test = _split(adata)
    act = activity(adata, 3.0)
    model = fit_moa(train, act)
    want = predict_moa(model, test, act)
    renamed = test.copy()
    renamed.obs = renamed.obs.rename(columns={"compound": "cpd", "timepoint": "t_h", "dose": "conc"})
    spec = {
        "compound_key": "cpd",
        "condition_keys": ["t_h", "conc"],
        "control": "cpd == 'DMSO'",
        "activity_keys": ["compound", "timepoint", "dose"],
    }
    got = predict_moa(model, renamed, act, spec=spec)
    pd.testing.assert_frame_equal(got.predictions, want.predictions)
    assert (
        got.params["spec"]["compound_key"] == "cpd" and got.params["model_spec"]["compound_key"] == "compound"
    )
    from lcd_core import ConfigError

    with pytest.raises(ConfigError, match="control_label 'ctrl' differs from the model's 'DMSO'"):
        predict_moa(model, test, act, spec={"control_label": "ctrl"})
    with pytest.raises(ConfigError, match="must name 2 columns, matched in order"):
        predict_moa(model, test, act, spec={"condition_keys": ["dose"], "dose_key": "dose"})
