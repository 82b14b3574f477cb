"""Score-level ensembles: the combiners by hand, and ensembles trained and saved end to end."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_problem

from xmc.cli.main import main
from xmc.data.datasets import resolve
from xmc.models.ensemble import Ensemble, EnsembleConfig, combine_scores, reseeded
from xmc.models.pipeline import load
from xmc.models.xr_linear import XRLinear, XRLinearConfig


def test_combiners_by_hand():
    a = sp.csr_matrix(np.array([[0.9, 0.1, 0.0]], np.float32))
    b = sp.csr_matrix(np.array([[0.0, 0.5, 0.7]], np.float32))
    avg = combine_scores([a, b], "average", 3)
    np.testing.assert_allclose(avg.toarray(), [[0.45, 0.3, 0.35]], rtol=1e-6)
    ranks = combine_scores([a, b], "rank_average", 3)  # a ranks 0 then 1; b ranks 2 then 1
    np.testing.assert_allclose(ranks.toarray(), [[0.5, (0.5 + 0.5) / 2, 0.5]], rtol=1e-6)
    soft = combine_scores([a, b], "softmax_average", 1)
    ea, eb = np.exp([0.9, 0.1]), np.exp([0.5, 0.7])
    expected = [(ea[0] / ea.sum()) / 2, (ea[1] / ea.sum() + eb[0] / eb.sum()) / 2, (eb[1] / eb.sum()) / 2]
    assert soft.indices.tolist() == [int(np.argmax(expected))]
    np.testing.assert_allclose(soft.data, [max(expected)], rtol=1e-6)


def test_weighted_combiners_by_hand():
    a = sp.csr_matrix(np.array([[0.9, 0.1, 0.0]], np.float32))
    b = sp.csr_matrix(np.array([[0.0, 0.5, 0.7]], np.float32))
    weighted = combine_scores([a, b], "average", 3, weights=(3, 1))  # normalised to 0.75 / 0.25
    np.testing.assert_allclose(weighted.toarray(), [[0.675, 0.2, 0.175]], rtol=1e-6)
    ranks = combine_scores([a, b], "rank_average", 3, weights=(0.0, 2.0))  # a's say is nothing
    np.testing.assert_allclose(ranks.toarray(), [[0.0, 0.5, 1.0]], rtol=1e-6)
    assert combine_scores([a, b], "average", 1, weights=(1, 0)).indices.tolist() == [0]
    assert combine_scores([a, b], "average", 1, weights=(1, 4)).indices.tolist() == [2]
    equal = combine_scores([a, b], "softmax_average", 3, weights=(2, 2))
    assert (abs(equal - combine_scores([a, b], "softmax_average", 3)) > 1e-7).nnz == 0
    for bad in [(1.0,), (1.0, -1.0), (0.0, 0.0), (1.0, float("nan"))]:
        with pytest.raises(ValueError, match="weight"):
            combine_scores([a, b], "average", 3, weights=bad)


def test_reseeded_moves_every_nested_seed():
    cfg = reseeded(XRLinearConfig(), 3)
    assert cfg.tree.seed == 3 and cfg.ranker.seed == 3 and cfg.beam == XRLinearConfig().beam


def test_ensemble_of_one_model_twice_equals_the_model(tmp_path):
    X, Y = random_problem(n=200, n_labels=30)
    model = XRLinear(XRLinear._test_config()).fit(X, Y)
    ens = Ensemble(EnsembleConfig(combine="average", top_k=5, member_top_k=5), [model, model])
    a, b = ens.predict(X, top_k=5), model.predict(X, top_k=5)
    assert (a != b).nnz == 0
    ens.save(tmp_path / "e")
    again = load(tmp_path / "e")
    assert isinstance(again, Ensemble) and (again.predict(X, top_k=5) != a).nnz == 0


def test_cli_trains_an_ensemble_and_combines_saved_models(eurlex_slice, tmp_path, capsys):
    base = ["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--set", "tree.max_leaf_size=32"]
    assert main([*base, "--out", str(tmp_path / "e"), "--ensemble", "2"]) == 0
    pipeline = load(tmp_path / "e")
    assert isinstance(pipeline.model, Ensemble) and len(pipeline.model.members_) == 2
    seeds = [m.config.tree.seed for m in pipeline.model.members_]
    assert seeds == [0, 1]
    capsys.readouterr()
    assert main(["ensemble", "--models", str(tmp_path / "e"), str(tmp_path / "e"), "--out", str(tmp_path / "x"),
                 "--combine", "average"]) == 0
    twice, once = load(tmp_path / "x"), pipeline  # averaging a model with itself changes no ranking
    texts = resolve(eurlex_slice).load("dev").texts[:20]
    assert (twice.predict(texts, top_k=5).indices != once.predict(texts, top_k=5).indices).sum() == 0
    assert main(["ensemble", "--models", str(tmp_path / "e"), "--out", str(tmp_path / "y")]) == 2
    assert "at least two" in capsys.readouterr().err
    relabelled = tmp_path / "relabelled"
    shutil.copytree(tmp_path / "e", relabelled)
    labels = relabelled / "labels.txt"
    labels.write_text(labels.read_text().replace("\n", "\nx-", 1))
    assert main(["ensemble", "--models", str(tmp_path / "e"), str(relabelled), "--out", str(tmp_path / "z")]) == 2
    assert "other labels" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ensemble", "--models", str(tmp_path / "e"), "--out", str(tmp_path / "x"), "--combine", "vote"])


def test_cli_weights_are_saved_and_checked(eurlex_slice, tmp_path, capsys):
    for seed in (0, 1):
        sets = ["--set", "tree.max_leaf_size=32", "--set", f"tree.seed={seed}", "--set", f"ranker.seed={seed}"]
        out = str(tmp_path / f"m{seed}")
        assert main(["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--out", out, *sets]) == 0
    models = [str(tmp_path / "m0"), str(tmp_path / "m1")]
    capsys.readouterr()
    assert main(["ensemble", "--models", *models, "--out", str(tmp_path / "w"), "--combine", "average",
                 "--weights", "1,0"]) == 0
    weighted, first = load(tmp_path / "w"), load(tmp_path / "m0")
    assert weighted.model.config.weights == (1.0, 0.0)
    texts = resolve(eurlex_slice).load("dev").texts[:20]
    a, b = weighted.predict(texts, top_k=5), first.predict(texts, top_k=5)  # all the say to the first model
    assert (a.indices != b.indices).sum() == 0
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6)
    for bad, message in (("1", "2 members"), ("1,x", "numbers"), ("0,0", "not all zero")):
        assert main(["ensemble", "--models", *models, "--out", str(tmp_path / "bad"), "--weights", bad]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
