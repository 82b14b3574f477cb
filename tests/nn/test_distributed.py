"""Two CPU processes under torchrun (gloo) train the same weights as one process with the same global
batch (a tiny BERT without dropout, a dense head: losses that are means over equal rows)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("ddp_script.py")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_what_one_process_trains(keyword_task, tmp_path):
    from transformers import BertConfig, BertModel

    from xmc.nn.tiny import build_tiny_bert

    bert = build_tiny_bert(keyword_task[0], tmp_path / "bert", vocab_size=200)
    config = BertConfig.from_pretrained(bert)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    BertModel.from_pretrained(bert).save_pretrained(bert)  # weights as they were
    config.save_pretrained(bert)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(SCRIPT), str(bert), str(tmp_path / "one.safetensors")], check=True, env=env,
                   timeout=600)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(_port()), str(SCRIPT), str(bert), str(tmp_path / "two.safetensors")], check=True, env=env,
                   timeout=600, capture_output=True)
    one, two = load_file(str(tmp_path / "one.safetensors")), load_file(str(tmp_path / "two.safetensors"))
    assert one.keys() == two.keys()
    moved = 0
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)
        moved += 1
    assert moved > 10
