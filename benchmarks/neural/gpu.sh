#!/usr/bin/env bash
# Every neural method's GPU config (XR-Transformer, LightXML, CascadeXML, ELIAS++ (with ELIAS inside), the
# dual encoder:
# their for_gpu() recipes)
# on EURLEX57K train -> dev, with XR-Linear and the score ensembles beside them, written to
# benchmarks/results/neural_gpu.md. Sized for well under 10 minutes on one H200-class GPU.
#
#   bash benchmarks/neural/gpu.sh             # on a machine with CUDA (after ./run test has built .venv)
#   bash benchmarks/neural/gpu.sh --dry-run   # the same steps on a tiny slice, on the CPU: checks the script
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${XMC_PYTHON:-.venv/bin/python}
export XMC_DATA_DIR=${XMC_DATA_DIR:-$(cd ../shared/data 2>/dev/null && pwd || echo "")}
METHODS=xr-linear,xr-transformer,lightxml,cascadexml,elias++,dual-encoder

if [ "${1:-}" = "--dry-run" ]; then
    exec "$PY" benchmarks/neural/neural.py --config gpu --datasets full --name neural_gpu_dry_run --dry-run \
        --methods "$METHODS"
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu.sh: torch sees no CUDA device; use --dry-run on a CPU" >&2
    exit 2
fi
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
exec "$PY" benchmarks/neural/neural.py --config gpu --datasets full --name neural_gpu --methods "$METHODS"
