"""Run by tests/nn/test_distributed.py, alone or under torchrun: trains the flat LightXML of the
keyword task and writes the weights (rank 0) to the path given."""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp
import torch


def main(bert: str, out: str) -> None:
    from safetensors.torch import save_file

    from xmc.models.lightxml import LightXML, LightXMLConfig
    from xmc.nn.encoders import EncoderConfig
    from xmc.training.distributed import world
    from xmc.training.trainer import OptimConfig, TrainConfig

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    rows, texts = [], []
    for _ in range(96):
        labels = rng.choice(12, size=2, replace=False)
        texts.append(" ".join([words[5 * j] for j in labels] + list(rng.choice(words, 4))))
        rows.append(sorted(labels))
    Y = sp.csr_matrix((np.ones(192, np.float32), np.concatenate(rows), np.arange(0, 193, 2)), shape=(96, 12))
    config = LightXMLConfig(encoder=EncoderConfig(name=bert, max_seq_len=12), clustered=False, dropout=0.0,
                            train=TrainConfig(epochs=2, batch_size=16, device="cpu", eval_docs=0, select="",
                                              optim=OptimConfig(lr=1e-3, head_lr=1e-2, warmup=0.0)))
    model = LightXML(config).fit(texts, Y)
    if world()[0] == 0:
        save_file({k: v.contiguous() for k, v in model.net_.state_dict().items()}, out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], sys.argv[2])
