"""Labels known by their text: ``train(zero_shot=...)`` adds them, scores them from their text,
keeps them through save and load, and the zero-shot group is evaluated on its own ranking."""

from __future__ import annotations

import numpy as np
import pytest

from xmc import api
from xmc.exceptions import XMCError
from xmc.features.tfidf import TfidfConfig

KNOWN = {"fin": "finance banking money", "agr": "agriculture farming crops", "fish": "fishery fishing boats",
         "tra": "transport railway roads", "ene": "energy electricity power"}
TEXT_ONLY = {"zeb": "zebra stripes savanna", "vol": "volcano lava eruption", "ice": "glacier ice polar"}


def _write(folder, split, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}_texts.txt").write_text("".join(t + "\n" for t, _ in rows))
    (folder / f"{split}_labels.txt").write_text("".join(" ".join(ls) + "\n" for _, ls in rows))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("zs") / "Toy"
    filler = ["the", "council", "regulation", "member", "states", "article", "annex"]

    def doc(labels, texts):
        words = [w for lab in labels for w in rng.choice(texts[lab].split(), 2)] + list(rng.choice(filler, 4))
        return " ".join(rng.permutation(words)), labels

    known = list(KNOWN)
    train = [doc([known[i % 5]] + ([known[(i + 2) % 5]] if i % 3 == 0 else []), KNOWN) for i in range(300)]
    all_texts = {**KNOWN, **TEXT_ONLY}
    dev = [doc([known[i % 5]], all_texts) for i in range(60)]
    dev += [doc(["zeb"], all_texts) for _ in range(10)] + [doc(["vol"], all_texts) for _ in range(10)]
    _write(folder, "train", train)
    _write(folder, "dev", dev)
    (folder / "label_texts.txt").write_text("".join(f"{k}\t{v}\n" for k, v in {**all_texts, "unused": "x y"}.items()))
    return folder


def test_zero_shot_labels_are_predicted_from_their_text(dataset, tmp_path):
    overrides = ["tfidf.min_df=1"]
    plain = api.train("xr-linear", dataset, tmp_path / "plain", overrides=overrides)
    assert len(plain.pipeline.vocab) == 5
    result = api.train("xr-linear", dataset, tmp_path / "zs", overrides=overrides, zero_shot="splits",
                       label_text=api.LabelTextConfig(tfidf=TfidfConfig(min_df=1)))
    pipeline = result.pipeline
    assert pipeline.vocab.labels[:5] == plain.pipeline.vocab.labels
    assert set(pipeline.vocab.labels[5:]) == {"zeb", "vol"}
    assert pipeline.label_freq[5:].tolist() == [0, 0]
    metrics = api.evaluate(tmp_path / "zs", dataset, "dev", groups=True)
    assert metrics["groups"]["zero"]["n_docs"] == 20 and metrics["groups"]["zero"]["RP@5"] > 90
    assert metrics["P@1"] >= plain.metrics["P@1"] - 1  # known labels keep their ranks
    zebra = api.load(tmp_path / "zs").predict_rows(["zebra stripes near the savanna"], top_k=3, calibrated=False)
    assert zebra[0][0][0] == "zeb"
    again = api.load(tmp_path / "zs")
    dev = api.resolve(dataset).load("dev")
    assert (again.predict(dev.texts, top_k=5) != pipeline.predict(dev.texts, top_k=5)).nnz == 0


def test_all_labels_with_a_text_and_refusals(dataset, tmp_path):
    result = api.train("xr-linear", dataset, tmp_path / "all", overrides=["tfidf.min_df=1"], zero_shot="all",
                       label_text=api.LabelTextConfig(tfidf=TfidfConfig(min_df=1)))
    assert set(result.pipeline.vocab.labels[5:]) == {"zeb", "vol", "ice", "unused"}
    (dataset.parent / "Bare").mkdir()
    _write(dataset.parent / "Bare", "train", [("apple banana", ["x"]), ("cherry date", ["y"])])
    with pytest.raises(XMCError, match="no label texts"):
        api.train("xr-linear", dataset.parent / "Bare", None, overrides=["tfidf.min_df=1"], zero_shot="all",
                  eval_split=None)
    with pytest.raises(XMCError, match="--zero-shot must be one of"):
        api.train("xr-linear", dataset, None, overrides=["tfidf.min_df=1"], zero_shot="some")


def test_the_dual_encoder_learns_labels_from_their_text_through_train(dataset, tmp_path):
    pytest.importorskip("torch")
    from xmc.nn.tiny import build_tiny_bert

    dev = api.resolve(dataset).load("dev")
    words = list(api.resolve(dataset).load("train").texts) + list(dev.texts) + list({**KNOWN, **TEXT_ONLY}.values())
    encoder = build_tiny_bert(words, tmp_path / "bert", vocab_size=300)
    overrides = [f"encoder.name={encoder}", "encoder.max_seq_len=16", "label_max_seq_len=8", "train.epochs=3",
                 "train.batch_size=16", "train.device=cpu", "train.optim.lr=5e-3", "label_epochs=3",
                 "label_batch_size=32", "refresh_steps=10", "freeze_layers=0"]
    result = api.train("dual-encoder", dataset, tmp_path / "dual", overrides=overrides, zero_shot="splits")
    pipeline = result.pipeline
    assert len(pipeline.vocab) == 7 and set(pipeline.vocab.labels[5:]) == {"zeb", "vol"}
    assert pipeline.label_freq[5:].tolist() == [0, 0] and pipeline.label_text is None  # scored natively
    metrics = api.evaluate(tmp_path / "dual", dataset, "dev", groups=True)
    assert metrics["P@1"] > 80 and metrics["groups"]["zero"]["RP@5"] > 80
    again = api.load(tmp_path / "dual")
    assert (again.predict(dev.texts, top_k=5) != pipeline.predict(dev.texts, top_k=5)).nnz == 0


def test_the_command_line_sets_the_label_text_scorer(dataset, tmp_path, capsys):
    from xmc.cli.main import main

    base = ["train", "--method", "xr-linear", "--data", str(dataset), "--set", "tfidf.min_df=1", "--zero-shot",
            "splits", "--label-text-set", "tfidf.min_df=1"]
    assert main([*base, "--out", str(tmp_path / "trained")]) == 0
    assert main([*base, "--out", str(tmp_path / "plain"), "--label-text-set", "trained=false"]) == 0
    assert (tmp_path / "trained" / "label_text" / "ranker.npz").is_file()
    assert (tmp_path / "plain" / "label_text" / "labels.npz").is_file()
    assert not (tmp_path / "plain" / "label_text" / "ranker.npz").exists()
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "bad"), "--label-text-set", "no_such=1"]) != 0
    assert "no_such" in capsys.readouterr().err


def test_one_tfidf_serves_the_model_and_the_scorer_when_their_settings_agree(dataset, tmp_path):
    from xmc.api.training import label_text_columns
    from xmc.models.label_text import LabelTextScorer

    config = api.LabelTextConfig(tfidf=TfidfConfig(min_df=1))
    result = api.train("xr-linear", dataset, None, overrides=["tfidf.min_df=1"], zero_shot="splits", label_text=config)
    pipeline, scorer = result.pipeline, result.pipeline.label_text.scorer
    assert scorer.featurizer is pipeline.featurizer
    assert "zebra" in pipeline.featurizer.terms_  # a word of a label text only: the shared TF-IDF read them
    plain = api.train("xr-linear", dataset, None, overrides=["tfidf.min_df=1"], eval_split=None)
    assert "zebra" not in plain.pipeline.featurizer.terms_
    # the scorer is the one it would be with a TF-IDF of its own
    train = api.resolve(dataset).load("train")
    full, label_texts = label_text_columns(api.resolve(dataset), plain.pipeline.vocab, train, "splits")
    own = LabelTextScorer(config).fit(train.texts, label_texts, plain.pipeline.vocab.encode(train.labels).Y,
                                      pool_sizes=[int(g.sum()) for g in pipeline.label_text.groups()])
    assert own.featurizer.terms_ == scorer.featurizer.terms_
    np.testing.assert_allclose(own.label_tfidf.toarray(), scorer.label_tfidf.toarray(), rtol=1e-6)
    np.testing.assert_allclose(own.ranker.model.coef, scorer.ranker.model.coef, rtol=1e-4, atol=1e-6)
    # other settings for the scorer: each fits its own, and the model's TF-IDF reads no label text
    unigrams = api.LabelTextConfig(tfidf=TfidfConfig(min_df=1, ngram_max=1))
    apart = api.train("xr-linear", dataset, None, overrides=["tfidf.min_df=1"], zero_shot="splits",
                      label_text=unigrams).pipeline
    assert apart.label_text.scorer.featurizer is not apart.featurizer
    assert "zebra" not in apart.featurizer.terms_ and "zebra" in apart.label_text.scorer.featurizer.terms_
