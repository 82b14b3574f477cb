"""The dual encoder's two stages on the shared :class:`xmc.training.trainer.Trainer`: the encoder
against in-batch and mined hard negatives, then the label vectors over cached document embeddings
(:mod:`xmc.models.dual_encoder` says what each does and why)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from xmc.metrics.ranking import precision_at_k
from xmc.nn.ann import LabelIndex
from xmc.nn.encoders import Tap
from xmc.nn.prefix import FrozenPrefix, freeze_encoder
from xmc.nn.tokens import TextTokenizer, TokenizedTexts, bucketed_batches, length_sorted_batches
from xmc.training.trainer import Stage, standard_groups
from xmc.utils.rng import random_subset
from xmc.utils.sparse import binarize

LAST = (Tap("mean", -1),)
_MAX_POSITIVES = 64  # positives skipped past when mining negatives (a document with more gets fewer negatives)


class DualStages:
    """Tokens, caches and the two :class:`Stage`\\ s of one dual-encoder fit. ``model`` is the
    :class:`xmc.models.dual_encoder.DualEncoder` being fitted (its net, tokenizer and config)."""

    def __init__(self, model, texts: list[str], Y: sp.csr_matrix, label_texts: list[str], inputs: dict[str, str],
                 checkpoint_dir: str | Path | None, resume: bool, eval_set):
        self.model, self.net, self.cfg, self.device = model, model.net_, model.config, model.device
        self.Y = binarize(sp.csr_matrix(Y, dtype=np.float32))
        self.Y.sort_indices()
        t0 = time.perf_counter()
        cache = Path(checkpoint_dir) / "tokens.npz" if checkpoint_dir is not None else None
        self.docs = model.text_tokenizer().cached(texts, inputs, cache, resume)
        # label texts are read whole (no strip: the pattern is about documents), to their own budget
        self.labels = TextTokenizer(model.tokenizer_, self.cfg.label_max_seq_len)(label_texts,
                                                                                  desc="tokenise label texts")
        self.eval = self._eval_subset(eval_set)
        self.seconds = {"tokenise": time.perf_counter() - t0}
        freeze_encoder(self.net.encoder, self.cfg.freeze_embeddings, self.cfg.freeze_layers)
        self.rows_with_labels = np.flatnonzero(np.diff(self.Y.indptr) > 0)
        self._prefix: dict[str, FrozenPrefix] = {}
        self._mining: LabelIndex | None = None
        self._steps = 0
        self._doc_vectors: torch.Tensor | None = None  # stage 2: every training document, unit rows

    def build(self) -> list[Stage]:
        cfg, o = self.cfg, self.cfg.train.optim
        n = self.rows_with_labels.size
        stages = [Stage(name="dual-encoder", loss=self._encoder_loss, batches=self._encoder_batches,
                        groups=self._encoder_groups, epochs=cfg.train.epochs,
                        n_batches=int(np.ceil(n / cfg.train.batch_size)), warmup=o.warmup, schedule=o.schedule,
                        clip=o.clip, evaluate=self._evaluator(label_stage=False),
                        on_epoch_start=self._restart_mining)]
        if cfg.label_epochs:
            stages.append(Stage(name="label-vectors", loss=self._label_loss, batches=self._label_batches,
                                groups=self._label_groups, epochs=cfg.label_epochs,
                                n_batches=int(np.ceil(n / cfg.label_batch_size)), warmup=o.warmup,
                                schedule=o.schedule, clip=0.0, evaluate=self._evaluator(label_stage=True),
                                on_epoch_start=self._forget_mining, on_end=self._drop_caches))
        return stages

    def finish(self) -> None:
        """Without a label stage the label texts' embeddings are the label vectors."""
        if not self.cfg.label_epochs:
            self.net.label_base.copy_(torch.from_numpy(self._embed_all("labels")))
        self._drop_caches()

    # -- encoding ----------------------------------------------------------------------------------
    def _encode(self, kind: str, rows: np.ndarray) -> torch.Tensor:
        """Unit embeddings of ``rows`` of the documents or label texts, with gradients (through the
        cached frozen layers when ``freeze_layers`` and ``cache_frozen``)."""
        tokens = self.docs if kind == "docs" else self.labels
        if self.cfg.freeze_layers and self.cfg.cache_frozen:
            if kind not in self._prefix:
                self._prefix[kind] = FrozenPrefix(self.net.encoder, tokens, self.cfg.freeze_layers, self.device,
                                                  amp=self.cfg.train.amp)
            vectors = self._prefix[kind].taps(rows, LAST)[0][0]
        else:
            ids, mask = tokens.batch(rows)
            vectors = self.net.encoder(ids.to(self.device), mask.to(self.device))
        vectors = torch.nn.functional.dropout(vectors.float(), self.cfg.encoder.dropout, self.net.encoder.training)
        return torch.nn.functional.normalize(vectors, dim=-1)

    @torch.no_grad()
    def _embed_all(self, kind: str, batch_size: int = 256) -> np.ndarray:
        tokens = self.docs if kind == "docs" else self.labels
        out = np.zeros((len(tokens), self.net.encoder.dim), dtype=np.float32)
        was_training = self.net.encoder.training
        self.net.encoder.eval()
        try:
            for rows in length_sorted_batches(tokens.lengths, batch_size):
                out[rows] = self._encode(kind, rows).cpu().numpy()
        finally:
            self.net.encoder.train(was_training)
        return out

    # -- stage 1: the encoder ----------------------------------------------------------------------
    def _encoder_batches(self, rng: np.random.Generator):
        lengths = self.docs.lengths[self.rows_with_labels]
        ptr, idx = self.Y.indptr, self.Y.indices
        for local in bucketed_batches(lengths, self.cfg.train.batch_size, rng):
            rows = self.rows_with_labels[local]
            if rows.size < 2:
                continue
            counts = ptr[rows + 1] - ptr[rows]
            pos = idx[ptr[rows] + (rng.random(rows.size) * counts).astype(np.int64)]  # one true label each
            yield {"rows": rows, "pos": pos}

    def _encoder_loss(self, batch):
        rows = batch["rows"]
        docs = self._encode("docs", rows)
        candidates = [batch["pos"]]
        if self.cfg.hard_negatives:
            if self._mining is None or self._steps % self.cfg.refresh_steps == 0:
                self._mining = LabelIndex(self._embed_all("labels"), "auto")
            candidates.append(self._mine(self._mining, docs.detach(), rows, self.cfg.hard_negatives))
        self._steps += 1
        labels = np.unique(np.concatenate(candidates))
        return self.net.loss(docs, self._encode("labels", labels), self._positives(rows, labels))

    def _restart_mining(self, epoch: int) -> None:
        """Each epoch counts its own steps and mines from an index built on its first step, so a run
        resumed from an epoch's checkpoint refreshes the index on the same steps as one never stopped."""
        self._mining, self._steps = None, 0

    def _encoder_groups(self):
        o = self.cfg.train.optim
        heads = [self.net.pair] if self.net.pair is not None else []
        return standard_groups(self.net.encoder, heads, o.lr, o.head_lr, o.weight_decay)

    # -- stage 2: the label vectors ----------------------------------------------------------------
    def _label_batches(self, rng: np.random.Generator):
        order = rng.permutation(self.rows_with_labels)
        size = self.cfg.label_batch_size
        return [{"rows": order[i:i + size]} for i in range(0, order.size, size) if order[i:i + size].size > 1]

    def _label_loss(self, batch):
        if self._doc_vectors is None:
            self._start_label_stage()
        rows = batch["rows"]
        docs = self._doc_vectors[torch.from_numpy(rows).to(self.device)]
        candidates = [self.Y[rows].indices]
        if self.cfg.label_negatives:
            if self._mining is None:
                with torch.no_grad():
                    self._mining = LabelIndex(self.net.label_vectors().float().cpu().numpy(), "auto")
            candidates.append(self._mine(self._mining, docs, rows, self.cfg.label_negatives))
        labels = np.unique(np.concatenate(candidates))
        vectors = self.net.label_vectors(torch.from_numpy(labels).to(self.device))
        return self.net.loss(docs, vectors, self._positives(rows, labels))

    def _start_label_stage(self) -> None:
        """The fitted encoder's embeddings of every training document (cached) and label text (the
        label vectors' start)."""
        self._doc_vectors = torch.from_numpy(self._embed_all("docs")).to(self.device)
        self.net.label_base.copy_(torch.from_numpy(self._embed_all("labels")).to(self.net.label_base.device))
        self._mining = None

    def _label_groups(self):
        heads = [self.net.delta] + ([self.net.pair] if self.net.pair is not None else [])
        return standard_groups(None, heads, self.cfg.label_lr, self.cfg.label_lr, 0.0)

    def _forget_mining(self, epoch: int) -> None:
        self._mining = None  # rebuilt from the current label vectors on the epoch's first step

    def _drop_caches(self) -> None:
        self._prefix.clear()
        self._doc_vectors, self._mining = None, None

    # -- shared --------------------------------------------------------------------------------------
    def _mine(self, index: LabelIndex, docs: torch.Tensor, rows: np.ndarray, n: int) -> np.ndarray:
        """Each document's ``n`` most similar labels that are not its own."""
        counts = np.diff(self.Y.indptr)[rows]
        found, _ = index.search(docs.float().cpu().numpy(), n + int(min(counts.max(), _MAX_POSITIVES)))
        out = []
        for i, row in enumerate(rows):
            own = self.Y.indices[self.Y.indptr[row]:self.Y.indptr[row + 1]]
            out.append(found[i][~np.isin(found[i], own)][:n])
        return np.concatenate(out)

    def _positives(self, rows: np.ndarray, labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.Y[rows][:, labels].toarray() > 0).to(self.device)

    def _eval_subset(self, eval_set) -> tuple[TokenizedTexts, sp.csr_matrix] | None:
        if eval_set is None or not self.cfg.train.eval_docs:
            return None
        rows = random_subset(len(eval_set[0]), self.cfg.train.eval_docs, self.cfg.train.seed)
        texts, Y = [eval_set[0][i] for i in rows], sp.csr_matrix(eval_set[1])[rows]
        return self.model.text_tokenizer()(texts, desc="tokenise dev"), Y

    def _evaluator(self, label_stage: bool):
        if self.eval is None:
            return None

        def evaluate() -> dict[str, float]:
            tokens, Y = self.eval
            if label_stage:
                vectors = self.net.label_vectors().float().cpu().numpy()
            else:
                vectors = self._embed_all("labels")
            scores = self.model.search(self.model.embed_tokens(tokens, desc="embed dev"), 5, LabelIndex(vectors))
            return {f"P@{k}": 100 * precision_at_k(sp.csr_matrix(Y[:, : scores.shape[1]]), scores, k)
                    for k in (1, 3, 5)}

        return evaluate
