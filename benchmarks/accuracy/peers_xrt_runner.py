"""Run PECOS's XR-Transformer on the benchmark subset and time its fine-tuning; called by
xr_transformer.py inside PECOS's own venv (libpecos 1.2.8, transformers 4.46.3), so it must not
import xmc.

    python peers_xrt_runner.py WORK OUT STEPS MAX_LEN ENCODER_FOLDER

Writes ``OUT/pecos_xrt.json``: fine-tuning seconds and documents per second (steps x batch over
the time spent inside ``TransformerMatcher.fine_tune_encoder``, which also holds PECOS's per-level
checkpoint save and reload), level sizes, whole-train seconds; and ``OUT/pecos_sub.npz``, its
top-10 predictions for the dev texts (in the subset's label columns).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import scipy.sparse as sp

BATCH = 32


def main() -> None:
    work, out, encoder = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[5]
    steps, max_len = int(sys.argv[3]), int(sys.argv[4])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xtransformer.matcher import TransformerMatcher
    from pecos.xmc.xtransformer.model import XTransformer
    from pecos.xmc.xtransformer.module import MLProblemWithText

    torch.set_num_threads(torch.get_num_threads())
    texts = (work / "X.sub.txt").read_text(encoding="utf-8").splitlines()
    X, Y = sp.load_npz(work / "X.sub.npz").tocsr(), sp.load_npz(work / "Y.sub.npz").tocsr()

    spent = []
    original = TransformerMatcher.fine_tune_encoder

    def timed(self, prob, *args, **kwargs):
        t0 = time.perf_counter()
        result = original(self, prob, *args, **kwargs)
        spent.append(time.perf_counter() - t0)
        return result

    TransformerMatcher.fine_tune_encoder = timed
    params = json.loads(json.dumps(SKELETON))
    params["train_params"]["matcher_params_chain"].update(model_shortcut=encoder, max_steps=steps, batch_size=BATCH)
    params["pred_params"]["matcher_params_chain"]["truncate_length"] = max_len
    train_params = XTransformer.TrainParams.from_dict(params["train_params"], recursive=True)
    pred_params = XTransformer.PredParams.from_dict(params["pred_params"], recursive=True)
    t0 = time.perf_counter()
    label_feat = LabelEmbeddingFactory.create(Y, X, method="pifa")
    chain = Indexer.gen(label_feat, train_params=train_params.preliminary_indexer_params)
    model = XTransformer.train(MLProblemWithText(texts, Y, X_feat=X), clustering=chain, train_params=train_params,
                               pred_params=pred_params)
    total = time.perf_counter() - t0
    dev_texts = (work / "X.dev.txt").read_text(encoding="utf-8").splitlines()
    t1 = time.perf_counter()
    X_dev = sp.load_npz(work / "X.dev.npz").tocsr()
    P = model.predict(dev_texts, X_feat=X_dev, only_topk=10, use_gpu=False, batch_size=64)
    predict_s = time.perf_counter() - t1
    sp.save_npz(out / "pecos_sub.npz", sp.csr_matrix(P), compressed=False)
    levels = [int(c.shape[0]) for c in chain][: len(spent)]
    docs_per_second = len(spent) * steps * BATCH / sum(spent)
    result = {"seconds": sum(spent), "per_level_seconds": spent, "docs_per_second": docs_per_second,
              "levels": levels, "train_s": total, "depth": model.depth,
              "predict_ms_per_doc": 1000 * predict_s / len(dev_texts), "peak_rss_mb": resource_mb()}
    with open(out / "pecos_xrt.json", "w") as f:
        json.dump(result, f)


def resource_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# PECOS's parameter skeleton (`python -m pecos.xmc.xtransformer.train --generate-params-skeleton`)
# with the benchmark's choices: a preliminary tree with leaves of 16 and 16 top codes (PECOS's
# Eurlex-4K recipe), tfn+man, CPU, 0 warm-up, learning rate 1e-4; max_steps, batch and encoder are set above.
SKELETON = {
    "train_params": {
        "preliminary_indexer_params": {"nr_splits": 16, "min_codes": 16, "max_leaf_size": 16, "spherical": True,
                                       "seed": 0, "kmeans_max_iter": 20},
        "refined_indexer_params": {"nr_splits": 16, "min_codes": None, "max_leaf_size": 100, "spherical": True,
                                   "seed": 0, "kmeans_max_iter": 20},
        "matcher_params_chain": {"negative_sampling": "tfn+man", "loss_function": "squared-hinge",
                                 "bootstrap_method": "inherit", "lr_schedule": "linear", "threshold": 0.1,
                                 "hidden_dropout_prob": 0.1, "batch_gen_workers": 2, "learning_rate": 1e-4,
                                 "warmup_steps": 0, "num_train_epochs": 1000, "logging_steps": 10 ** 9,
                                 "save_steps": 10 ** 9, "use_gpu": False, "pre_tokenize": True},
        "ranker_params": {"hlm_args": {"neg_mining_chain": "tfn", "model_chain": {"threshold": 0.1}}},
        "do_fine_tune": True, "only_encoder": False, "fix_clustering": False, "max_match_clusters": 32768,
    },
    "pred_params": {"matcher_params_chain": {"only_topk": 10, "post_processor": "l3-hinge",
                                             "ensemble_method": "transformer-only", "truncate_length": 32},
                    "ranker_params": {"hlm_args": {"model_chain": {"only_topk": 10, "post_processor": "l3-hinge"}}}},
}


if __name__ == "__main__":
    main()
