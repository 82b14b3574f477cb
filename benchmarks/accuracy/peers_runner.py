"""Run one peer (PECOS XR-Linear, omikuji, napkinXC) on saved features; called by xr_linear.py.

Runs inside the peers' own virtual environment (libpecos pins numpy<2 and scipy<1.14), so it
must not import xmc. Writes ``<out>/<peer>.npz`` (CSR top-k scores) and ``<out>/<peer>.json``.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

TOP_K = 10
N_LATENCY = 1000


def _csr_from_lists(rows, n_labels):
    ptr, idx, val = [0], [], []
    for row in rows:
        for j, s in row:
            idx.append(j)
            val.append(s)
        ptr.append(len(idx))
    return sp.csr_matrix((np.asarray(val, np.float32), np.asarray(idx, np.int32), np.asarray(ptr)),
                         shape=(len(rows), n_labels))


def run_pecos(X, Y, Xt, tmp, seed=0):
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    t0 = time.perf_counter()
    label_feat = LabelEmbeddingFactory.create(Y, X, method="pifa")
    chain = Indexer.gen(label_feat, indexer_type="hierarchicalkmeans", seed=seed)  # defaults: 16 splits, leaves <= 100
    model = XLinearModel.train(X, Y, C=chain)
    train_s = time.perf_counter() - t0
    model.save(f"{tmp}/pecos")
    model = XLinearModel.load(f"{tmp}/pecos", is_predict_only=True)  # PECOS's fast inference path
    predict = lambda A: model.predict(A, beam_size=10, only_topk=TOP_K)  # noqa: E731  (CLI defaults)
    return train_s, predict, lambda i: predict(Xt[i])


def run_omikuji(X, Y, Xt, tmp, seed=0):
    import omikuji

    path = f"{tmp}/train.txt"
    with open(path, "w") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labs = ",".join(map(str, Y.indices[Y.indptr[i]:Y.indptr[i + 1]]))
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.6g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi], strict=True))
            f.write(f"{labs} {feats}\n")
    t0 = time.perf_counter()
    model = omikuji.Model.train_on_data(path, omikuji.Model.default_hyper_param(), n_threads=2)
    train_s = time.perf_counter() - t0

    def one(i):
        lo, hi = Xt.indptr[i], Xt.indptr[i + 1]
        return model.predict(list(zip(Xt.indices[lo:hi].tolist(), Xt.data[lo:hi].tolist(), strict=True)), top_k=TOP_K)

    def predict(A):
        rows = []
        for i in range(A.shape[0]):
            lo, hi = A.indptr[i], A.indptr[i + 1]
            features = list(zip(A.indices[lo:hi].tolist(), A.data[lo:hi].tolist(), strict=True))
            rows.append(model.predict(features, top_k=TOP_K))
        return _csr_from_lists(rows, Y.shape[1])

    return train_s, predict, one


def run_napkinxc(X, Y, Xt, tmp, seed=0):
    from napkinxc.models import PLT

    labels = [Y.indices[Y.indptr[i]:Y.indptr[i + 1]].tolist() for i in range(Y.shape[0])]
    t0 = time.perf_counter()
    model = PLT(f"{tmp}/napkin", threads=2)
    model.fit(X, labels)
    train_s = time.perf_counter() - t0

    def predict(A):
        return _csr_from_lists(model.predict_proba(A, top_k=TOP_K), Y.shape[1])

    return train_s, predict, lambda i: model.predict_proba(Xt[i], top_k=TOP_K)


def main():
    peer, work, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    tag = "" if seed == 0 else f"_s{seed}"
    X = sp.load_npz(work / "X.trn.npz").tocsr().astype(np.float32)
    Y = sp.load_npz(work / "Y.trn.npz").tocsr().astype(np.float32)
    Xt = sp.load_npz(work / "X.dev.npz").tocsr().astype(np.float32)
    for M in (X, Y, Xt):
        M.sort_indices()
    runner = {"pecos": run_pecos, "omikuji": run_omikuji, "napkinxc": run_napkinxc}[peer]
    with tempfile.TemporaryDirectory() as tmp:
        train_s, predict, one = runner(X, Y, Xt, tmp, seed)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak while training
        predict(Xt[:50])  # warm-up
        t0 = time.perf_counter()
        P = sp.csr_matrix(predict(Xt))
        batch_ms = 1000 * (time.perf_counter() - t0) / Xt.shape[0]
        lat = []
        for i in range(N_LATENCY):
            t0 = time.perf_counter()
            one(i % Xt.shape[0])
            lat.append(1000 * (time.perf_counter() - t0))
        model_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 2**20  # what it saved
    sp.save_npz(out / f"{peer}{tag}.npz", P)
    json.dump({"train_s": train_s, "batch_ms_per_doc": batch_ms, "latency_ms_median": float(np.median(lat)),
               "peak_rss_mb": rss, "model_mb": model_mb}, open(out / f"{peer}{tag}.json", "w"))


if __name__ == "__main__":
    main()
