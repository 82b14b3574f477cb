"""Any encoder-only Hugging Face folder that AutoModel loads: tiny random RoBERTa, DistilBERT,
DeBERTa-v2 and ModernBERT models, their layers cut and tapped whatever the architecture
names them, and clear errors for folders that cannot serve."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xmc.exceptions import XMCError
from xmc.metrics import precision_at_k
from xmc.nn.encoders import Tap, TextEncoder, load_pretrained

ARCHITECTURES = {
    "roberta": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=80, pad_token_id=0),
    "distilbert": dict(dim=32, n_layers=3, n_heads=2, hidden_dim=64, max_position_embeddings=80, pad_token_id=0),
    "deberta-v2": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=80, pad_token_id=0),
    "modernbert": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=80, pad_token_id=0, global_attn_every_n_layers=2,
                       local_attention=16),
}


def build(kind: str, tokenizer_folder, folder):
    """A random model of ``kind`` saved with safetensors beside the tiny BERT's WordPiece tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    torch.manual_seed(0)
    config = AutoConfig.for_model(kind, vocab_size=len(tokenizer), **ARCHITECTURES[kind])
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def encoder_folder(request, keyword_bert, tmp_path_factory):
    """A random model of each kind with the keyword task's WordPiece vocabulary."""
    return request.param, build(request.param, keyword_bert, tmp_path_factory.mktemp(request.param))


def test_layers_are_cut_and_tapped_whatever_their_names(encoder_folder, keyword_task):
    from xmc.nn.tokens import tokenize

    kind, folder = encoder_folder
    tokenizer, full = load_pretrained(folder)
    _, cut = load_pretrained(folder, n_layers=2)
    enc_full, enc_cut = TextEncoder(full.eval()), TextEncoder(cut.eval())
    assert (enc_full.n_layers, enc_cut.n_layers, enc_full.dim) == (3, 2, 32)
    ids, mask = tokenize(tokenizer, keyword_task[2][:4], 16).batch(np.arange(4))
    with torch.no_grad():
        taps = enc_full(ids, mask, (Tap("mean", 0), Tap("cls", 2), Tap("mean", -1)))
        short = enc_cut(ids, mask, (Tap("mean", -1),))[0]
    assert [t.shape for t in taps] == [(4, 32)] * 3
    with torch.no_grad():
        last_alone, last_among = enc_full(ids, mask, (Tap("mean", -1),))[0], taps[2]
    assert torch.allclose(last_alone, last_among, atol=1e-5)  # the last layer reads alike, tapped alone or not
    if kind != "modernbert":  # ModernBERT norms its last output only: a cut model's last layer is normed
        assert torch.allclose(short, enc_full(ids, mask, (Tap("mean", 2),))[0], atol=1e-5)  # the first 2 of 3
    with pytest.raises(XMCError, match="has only 3 layers"):
        load_pretrained(folder, n_layers=4)


def test_lightxml_learns_on_it(encoder_folder, keyword_task, tmp_path):
    """The transformer methods read the folder through one encoder interface (TextEncoder): LightXML
    stands for them all here."""
    from tests.nn.conftest import cascade_config

    from xmc.models import model_class

    kind, folder = encoder_folder
    texts, Y, test_texts, Y_test = keyword_task
    model = model_class("lightxml")(cascade_config("lightxml", folder)).fit(texts, Y)
    assert precision_at_k(Y_test, model.predict(test_texts, top_k=5), 1) > 0.5, kind  # 40 labels: chance is 0.04
    model.save(tmp_path / "m")
    again = model_class("lightxml").load(tmp_path / "m")
    assert (again.predict(test_texts[:10]) != model.predict(test_texts[:10])).nnz == 0


def test_folders_that_cannot_serve_are_clear_errors(tiny_bert, tmp_path):
    import shutil

    from transformers import AutoConfig, AutoModel

    no_tokenizer = tmp_path / "no_tokenizer"
    shutil.copytree(tiny_bert, no_tokenizer)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (no_tokenizer / name).unlink(missing_ok=True)
    with pytest.raises(XMCError, match="tokenizer"):
        load_pretrained(no_tokenizer)

    t5 = tmp_path / "t5"
    config = AutoConfig.for_model("t5", vocab_size=100, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    AutoModel.from_config(config).save_pretrained(t5)
    for path in tiny_bert.iterdir():
        if path.name.startswith(("tokenizer", "vocab", "special")):
            shutil.copy(path, t5 / path.name)
    with pytest.raises(XMCError, match="encoder-decoder"):
        load_pretrained(t5)

    remote = tmp_path / "remote"
    shutil.copytree(tiny_bert, remote)
    settings = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**settings, "auto_map": {"AutoModel": "x.Model"}}))
    with pytest.raises(XMCError, match="remote code"):
        load_pretrained(remote)
