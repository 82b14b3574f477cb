"""``xmc``: extreme multi-label text classification from the command line.

Every subcommand parses its options, calls :mod:`xmc.api`, and prints; user errors become one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from xmc import api
from xmc.exceptions import XMCError

QUANTIZE_HELP = "int8 CPU inference for a transformer encoder (faster, a little less exact)"
EPILOG = """examples:
  xmc data info EURLEX57K
  xmc train --method xr-linear --data EURLEX57K --out models/eurlex
  xmc evaluate --model models/eurlex --data EURLEX57K --split dev
  xmc predict --model models/eurlex --data EURLEX57K --split dev --top-k 5 --out preds/dev
  xmc config xr-linear

Datasets are folders, or names looked up in XMC_DATA_DIR (a path list)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2), like every other user error of xmc."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_data_commands(sub) -> None:
    data = sub.add_parser("data", help="inspect or fetch datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="{info,fetch,derive,synth}")
    info = dsub.add_parser("info", help="documents, labels and label frequencies of a dataset")
    info.add_argument("name", help="dataset name (in XMC_DATA_DIR) or folder")
    fetch = dsub.add_parser("fetch", help="download a public dataset and convert it to xmc's layout")
    fetch.add_argument("name", choices=["eurlex57k", "reuters21578"])
    fetch.add_argument("--to", required=True, help="folder to create the dataset folder in")
    fetch.add_argument("--from", dest="archive", help="convert this already downloaded archive instead")
    derive = dsub.add_parser("derive", help="the same documents and labels with another text field as the text")
    derive.add_argument("name", help="dataset name (in XMC_DATA_DIR) or folder")
    derive.add_argument("--text-field", required=True, help="field of {split}_meta.jsonl[.gz], e.g. title")
    derive.add_argument("--out", required=True, help="dataset folder to write (e.g. DIR/EURLEX57K-titles)")
    derive.add_argument("--overwrite", action="store_true", help="replace a dataset folder already at --out")

    imp = dsub.add_parser("import", help="a JSONL, CSV/TSV or Parquet file of labelled texts into a dataset folder")
    imp.add_argument("file", help="the file (format by its suffix: .jsonl, .csv, .tsv, .parquet)")
    imp.add_argument("--out", required=True, help="dataset folder to write")
    imp.add_argument("--text-field", default="text", help="field of the text; several joined: title,body")
    imp.add_argument("--labels-field", default="labels", help="field of the labels: a list, or a string")
    imp.add_argument("--label-sep", default=None, help="cut a labels string here (default: at whitespace)")
    imp.add_argument("--id-field", default=None, help="a document id field, written to {split}_ids.txt")
    imp.add_argument("--split", default="0.8,0.1,0.1", help="train,dev[,test] fractions of a seeded random split")
    imp.add_argument("--split-field", default=None, help="the file's own split column instead (needs 'train')")
    imp.add_argument("--seed", type=int, default=0, help="seed of the random split")
    imp.add_argument("--label-names", default=None, help="a label<TAB>name file to keep beside the data")
    imp.add_argument("--format", default=None, choices=("jsonl", "csv", "tsv", "parquet"))
    imp.add_argument("--skip-bad", action="store_true",
                     help="leave out bad rows (counted and shown) instead of stopping")
    imp.add_argument("--overwrite", action="store_true", help="replace a dataset folder already at --out")
    synth = dsub.add_parser("synth", help="a synthetic bag-of-words set shaped like the large XC sets")
    synth.add_argument("--preset", choices=["amazon-670k", "1m", "100k", "10k"], help="sizes of a known set")
    synth.add_argument("--docs", type=int, help="training documents")
    synth.add_argument("--test-docs", type=int, help="test documents (default: a quarter of --docs)")
    synth.add_argument("--features", type=int, help="features (vocabulary size)")
    synth.add_argument("--labels", type=int, help="labels")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True, help="dataset folder to write")
    synth.add_argument("--overwrite", action="store_true", help="replace a synthetic set already at --out")


def _add_model_commands(sub, methods) -> None:
    train = sub.add_parser("train", help="train a model on a dataset split and save it")
    train.add_argument("--method", default=api.DEFAULT_METHOD, choices=methods)
    train.add_argument("--data", required=True, help="dataset name or folder")
    train.add_argument("--out", required=True, help="model folder to write (new or empty; see --overwrite)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace an existing xmc model in --out (kept intact until the new one is complete)")
    train.add_argument("--split", default="train")
    train.add_argument("--eval-split", default="auto", help="split to evaluate after training (auto: dev/test; none)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. beam.beam_size=20 or tfidf.min_df=3 (see `xmc config`)")
    train.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="ray: XR-Linear's rankers train as Ray tasks (same model as local)")
    train.add_argument("--workers", type=int, default=2, help="Ray tasks per level (--backend ray)")
    train.add_argument("--address", default=None, help="Ray cluster to join: auto, or ray://host:port")
    train.add_argument("--ensemble", type=int, default=1, metavar="N",
                       help="train N members with shifted seeds and combine their scores (softmax average)")
    train.add_argument("--zero-shot", choices=["splits", "all"], default=None,
                       help="also predict labels known only by their text (label_texts.txt or the dataset's "
                            "descriptors): the labels any split uses (splits) or every label with a text (all)")
    train.add_argument("--label-text-encoder", default="", metavar="NAME",
                       help="with --zero-shot, a sentence encoder whose cosine joins TF-IDF's (minilm-l6 or a folder)")
    train.add_argument("--label-text-set", action="append", default=[], metavar="KEY=VALUE",
                       help="with --zero-shot, a setting of the label-text scorer (e.g. trained=false for the plain "
                            "cosine, top_k=100); repeatable")
    train.add_argument("--dry-run", action="store_true",
                       help="estimate peak memory and time from short measured runs on samples; train nothing")
    train.add_argument("--max-memory", default=None, metavar="SIZE",
                       help="refuse a run estimated to need more (e.g. 8G; default: the memory available now); "
                            "without --dry-run the estimate runs first, then the training")
    neural = train.add_argument_group("neural methods (xr-transformer, lightxml, cascadexml)")
    neural.add_argument("--encoder", help="Hugging Face model folder (default: the packaged all-MiniLM-L6-v2)")
    neural.add_argument("--max-seq-len", type=int, help="tokens kept per document")
    neural.add_argument("--device", help="auto (CUDA when present), cpu, cuda or cuda:N")
    neural.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    neural.add_argument("--checkpoint-dir", help="save token ids and every finished level here")
    neural.add_argument("--resume", action="store_true",
                        help="continue from the last level saved in --checkpoint-dir (and replace the xmc model "
                             "an earlier attempt may have left in --out)")

    upd = sub.add_parser("update", help="add the labels of a dataset that a trained model does not know, without "
                                        "retraining it (xr-linear, xr-transformer)")
    upd.add_argument("--model", required=True, help="model folder written by `xmc train`")
    upd.add_argument("--data", required=True, help="dataset with the new labels' documents")
    upd.add_argument("--split", default="train")
    upd.add_argument("--out", required=True, help="model folder to write (new or empty; see --overwrite)")
    upd.add_argument("--overwrite", action="store_true", help="replace an existing xmc model in --out")
    upd.add_argument("--eval-split", default="auto", help="split to evaluate after the update (auto: dev/test; none)")
    upd.add_argument("--retrain-known", action="store_true",
                     help="also train again the known labels that have more documents in --data than in training")

    predict = sub.add_parser("predict", help="labels of new texts, or of a dataset split (to .npz and JSON lines)")
    predict.add_argument("--model", required=True)
    predict.add_argument("--quantize", action="store_true", help=QUANTIZE_HELP)
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to tag (repeat for several)")
    source.add_argument("--input", help="a file with one text per line ('-' reads standard input)")
    source.add_argument("--features", help="a .npz CSR matrix of feature rows (models trained on features)")
    source.add_argument("--data", help="a dataset: predict its --split and write --out")
    predict.add_argument("--split", default="test")
    predict.add_argument("--top-k", type=int, default=None, help="labels per text (default 5; for --data the model's)")
    predict.add_argument("--min-score", type=float, default=0.0,
                         help="drop labels scoring below this (scores are calibrated probabilities when the model "
                              "has a calibration)")
    predict.add_argument("--format", choices=["jsonl", "table"], default="jsonl", help="output of text predictions")
    predict.add_argument("--beam-size", type=int, default=None)
    predict.add_argument("--backend", choices=["local", "ray"], default="local",
                         help="ray: cut the rows of --data into Ray tasks")
    predict.add_argument("--workers", type=int, default=2, help="Ray tasks (--backend ray)")
    predict.add_argument("--address", default=None, help="Ray cluster to join: auto, or ray://host:port")
    predict.add_argument("--out", help="with --data: writes OUT.npz and OUT.jsonl")
    predict.add_argument("--overwrite", action="store_true", help="replace existing OUT.npz / OUT.jsonl")

    evaluate = sub.add_parser("evaluate", help="P@k, RP@k, nDCG@k, PSP@k, R@k of a model (or a prediction file)")
    what = evaluate.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="a model folder")
    what.add_argument("--pred", help="a prediction file of `xmc predict --out` (OUT.npz)")
    evaluate.add_argument("--quantize", action="store_true", help=QUANTIZE_HELP)
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--k", default="1,3,5", help="cut-offs, e.g. 1,3,5,10")
    evaluate.add_argument("--groups", action="store_true",
                          help="also per label group: frequent (>50 training docs), few-shot (1-50), zero-shot")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    ens = sub.add_parser("ensemble", help="combine trained models over the same labels into one model folder")
    ens.add_argument("--models", nargs="+", required=True, help="model folders written by `xmc train`")
    ens.add_argument("--out", required=True)
    ens.add_argument("--overwrite", action="store_true", help="replace an existing xmc model in --out")
    ens.add_argument("--combine", default="softmax_average", choices=api.combiners())
    ens.add_argument("--weights", default="", metavar="W1,W2,...",
                     help="one weight per model, in --models order (default: equal); choose them on held-out data")

    report = sub.add_parser("report", help="an HTML page of plots and tables (and metrics.json) for models on a split")
    report.add_argument("--model", action="append", required=True, help="a model folder (repeat to compare models)")
    report.add_argument("--data", required=True)
    report.add_argument("--split", default="dev")
    report.add_argument("--out", required=True, help="report folder to write (index.html, *.png, metrics.json)")
    report.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")

    serve = sub.add_parser("serve", help="serve a trained model over HTTP (FastAPI; a page to try it at /)")
    serve.add_argument("--model", required=True)
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-batch", type=int, default=64, help="texts scored together")
    serve.add_argument("--batch-wait-ms", type=float, default=0.0,
                       help="extra wait for more requests to join a batch (default 0: batches form from the queue)")
    serve.add_argument("--max-texts", type=int, default=64, help="texts in one request")
    serve.add_argument("--max-chars", type=int, default=20_000, help="characters in one text")
    serve.add_argument("--max-body", type=int, default=2_000_000, help="bytes in one request body")
    serve.add_argument("--threads", type=int, default=0,
                       help="CPU threads in all (default: every core), shared out among the workers")
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes forked after the model is loaded; they share its memory")
    serve.add_argument("--quantize", action="store_true", help=QUANTIZE_HELP)
    serve.add_argument("--api-key-file", default=None,
                       help="require 'Authorization: Bearer KEY' with a key of this file (one a line); "
                            "keys in $XMC_API_KEYS count too")
    serve.add_argument("--max-drain", type=int, default=64 << 20,
                       help="bytes of a refused body read (and dropped) so that any client sees the 413 or 401")

    config = sub.add_parser("config", help="print a method's default configuration as JSON")
    config.add_argument("method", choices=methods)

    demo = sub.add_parser("demo", help="train the default model on the default dataset and show results")
    demo.add_argument("--data", default=None, help=f"dataset (default {api.DEFAULT_DATASET}, else the first found)")
    demo.add_argument("--method", default=api.DEFAULT_METHOD, choices=methods)
    demo.add_argument("--out", default=None, help="model folder (default models/demo-<dataset>)")
    demo.add_argument("--examples", type=int, default=3, help="documents to show with their predictions")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xmc")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xmc", description="Extreme multi-label text classification: train, predict, evaluate.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"xmc {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(sub)
    _add_model_commands(sub, list(api.methods()))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    if args.command == "serve":  # a server says what it loads, reloads and restarts, like uvicorn beside it
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from xmc.cli import commands

    try:
        return commands.run(args)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("xmc: interrupted", file=sys.stderr)
        return 130
    except (XMCError, OSError) as exc:  # user mistakes, and the machine's refusals (disk full, permissions)
        if args.verbose >= 2:
            raise
        print(f"xmc: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else is a bug in xmc: say so, keep the details for -vv
        if args.verbose >= 2:
            raise
        print(f"xmc: internal error (a bug in xmc; please report it): {type(exc).__name__}: {_one_line(exc)}; "
              "run again with -vv for the traceback", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 2000 else text[:1997] + "..."


if __name__ == "__main__":
    sys.exit(main())
