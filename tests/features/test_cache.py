"""The feature cache: a hit gives the rows a fresh computation gives, without computing; a changed
text, setting or fitted vocabulary computes again; damaged entries are recomputed; the least
recently used entries go past the size limit."""

from __future__ import annotations

import numpy as np
import pytest

from xmc.features import TfidfConfig, TfidfFeaturizer
from xmc.features import cache as cache_module
from xmc.features.cache import FeatureCache

TEXTS = [f"document {i} about topic {i % 7} and words w{i % 13} w{i % 5}" for i in range(60)]


class Counting(TfidfFeaturizer):
    calls = 0

    def transform(self, texts):
        Counting.calls += 1
        return super().transform(texts)

    def fit_transform(self, texts):
        Counting.calls += 1
        return super().fit_transform(texts)


def _same(A, B):
    assert A.shape == B.shape and (A != B).nnz == 0


@pytest.fixture
def cache(tmp_path):
    Counting.calls = 0
    return FeatureCache(tmp_path / "cache")


def test_a_hit_gives_the_same_rows_without_computing(cache):
    f = Counting(TfidfConfig(min_df=1)).fit(TEXTS)
    first = cache.transform(f, TEXTS)
    calls = Counting.calls
    again = cache.transform(f, TEXTS)
    assert Counting.calls == calls  # read, not computed
    _same(again, first)
    _same(again, f.transform(TEXTS))
    again.data[:] = 0  # mapped copy-on-write: the caller's pages, not the file's
    _same(cache.transform(f, TEXTS), first)


def test_a_changed_text_or_featuriser_computes_again(cache):
    f = Counting(TfidfConfig(min_df=1)).fit(TEXTS)
    cache.transform(f, TEXTS)
    changed = TEXTS[:-1] + [TEXTS[-1] + " extra"]
    calls = Counting.calls
    _same(cache.transform(f, changed), f.transform(changed))
    assert Counting.calls == calls + 2  # the cache's computation, then the check's
    g = Counting(TfidfConfig(min_df=2)).fit(TEXTS)  # another vocabulary
    calls = Counting.calls
    _same(cache.transform(g, TEXTS), g.transform(TEXTS))
    assert Counting.calls == calls + 2


def test_a_cached_fit_hands_over_the_fitted_featuriser(cache):
    X = cache.fit_transform(Counting(TfidfConfig(min_df=1)), TEXTS)
    calls = Counting.calls
    g = Counting(TfidfConfig(min_df=1))
    Y = cache.fit_transform(g, TEXTS)
    assert Counting.calls == calls
    _same(X, Y)
    reference = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(TEXTS)
    assert g.terms_ == reference.terms_ and np.array_equal(g.idf_, reference.idf_)
    _same(g.transform(["document about topic 3"]), reference.transform(["document about topic 3"]))
    h = Counting(TfidfConfig(min_df=1, ngram_max=1))  # another setting: fitted anew
    calls = Counting.calls
    cache.fit_transform(h, TEXTS)
    assert Counting.calls == calls + 1 and h.n_features_ < g.n_features_


def test_a_damaged_entry_is_recomputed(cache):
    f = Counting(TfidfConfig(min_df=1)).fit(TEXTS)
    X = cache.transform(f, TEXTS)
    (entry,) = [p for p in cache.folder.iterdir() if not p.name.startswith(".")]
    np.save(entry / "data.npy", np.zeros(3, np.float32))  # wrong length
    calls = Counting.calls
    _same(cache.transform(f, TEXTS), X)
    assert Counting.calls == calls + 1


def test_the_least_recently_used_entries_go_past_the_limit(tmp_path):
    f = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(TEXTS)
    one = FeatureCache(tmp_path / "c").transform(f, TEXTS)
    size = one.data.nbytes + one.indices.nbytes + one.indptr.nbytes
    small = FeatureCache(tmp_path / "c", max_bytes=int(2.5 * size) + 4096)
    for n in (50, 51, 52, 53):
        small.transform(f, TEXTS[:n])
    entries = [p for p in (tmp_path / "c").iterdir() if not p.name.startswith(".")]
    assert 1 <= len(entries) <= 3


def test_small_inputs_and_off_bypass_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XMC_FEATURE_CACHE", str(tmp_path / "c"))
    f = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(TEXTS)
    cache_module.cached_transform(f, TEXTS)  # fewer than MIN_TEXTS
    assert not (tmp_path / "c").exists()
    monkeypatch.setattr(cache_module, "MIN_TEXTS", 10)
    _same(cache_module.cached_transform(f, TEXTS), f.transform(TEXTS))
    assert len(list((tmp_path / "c").iterdir())) == 1
    monkeypatch.setenv("XMC_FEATURE_CACHE", "off")
    assert FeatureCache.default() is None
