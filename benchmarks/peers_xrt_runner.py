"""Run PECOS's XR-Transformer on the benchmark subset and time its fine-tuning; called by
xr_transformer.py inside PECOS's own venv (libpecos 1.2.8, transformers 4.46.3), so it must not
import xmc.

    python peers_xrt_runner.py WORK OUT STEPS MAX_LEN ENCODER_FOLDER

Writes ``OUT/pecos_xrt.json``: fine-tuning seconds and documents per second (steps x batch over
the time spent inside ``TransformerMatcher.fine_tune_encoder``), level sizes, whole-train seconds.
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
    work, out, steps, max_len, encoder = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
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
    levels = [int(c.shape[0]) for c in chain][: len(spent)]
    json.dump({"seconds": sum(spent), "per_level_seconds": spent, "docs_per_second": len(spent) * steps * BATCH / sum(spent),
               "levels": levels, "train_s": total, "depth": model.depth}, open(out / "pecos_xrt.json", "w"))


# PECOS's parameter skeleton (`python -m pecos.xmc.xtransformer.train --generate-params-skeleton`)
# with the benchmark's choices: a preliminary tree with leaves of 16 and 16 top codes (PECOS's
# Eurlex-4K recipe), tfn+man, CPU, 0 warm-up, learning rate 1e-4; max_steps, batch and encoder are set above.
SKELETON = {
    "train_params": {
        "preliminary_indexer_params": {"nr_splits": 16, "min_codes": 16, "max_leaf_size": 16, "spherical": True, "seed": 0,
                                       "kmeans_max_iter": 20},
        "refined_indexer_params": {"nr_splits": 16, "min_codes": None, "max_leaf_size": 100, "spherical": True, "seed": 0,
                                   "kmeans_max_iter": 20},
        "matcher_params_chain": {"negative_sampling": "tfn+man", "loss_function": "squared-hinge", "bootstrap_method": "inherit",
                                 "lr_schedule": "linear", "threshold": 0.1, "hidden_dropout_prob": 0.1, "batch_gen_workers": 2,
                                 "learning_rate": 1e-4, "warmup_steps": 0, "num_train_epochs": 1000, "logging_steps": 10 ** 9,
                                 "save_steps": 10 ** 9, "use_gpu": False, "pre_tokenize": True},
        "ranker_params": {"hlm_args": {"neg_mining_chain": "tfn", "model_chain": {"threshold": 0.1}}},
        "do_fine_tune": True, "only_encoder": True, "fix_clustering": True, "max_match_clusters": 32768,
    },
    "pred_params": {"matcher_params_chain": {"only_topk": 10, "post_processor": "l3-hinge", "ensemble_method": "transformer-only",
                                             "truncate_length": 32},
                    "ranker_params": {"hlm_args": {"model_chain": {"only_topk": 10, "post_processor": "l3-hinge"}}}},
}


if __name__ == "__main__":
    main()
