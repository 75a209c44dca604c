#!/usr/bin/env bash
# One pass over optlab's CUDA path on a GPU machine, from the repository root:
#   bash bench/gpu_check.sh [OUT_DIR]
# ResNet on CIFAR-10-format files in bf16 / fp16 + channels_last / fp32 / torch.compile /
# streamed from host memory, the two benchmarks with --device "$DEVICE", a 4-workers-per-GPU
# sweep, and the test suite with CUDA visible (trainer.device=auto picks the GPU).
# Each step has its own time limit, so one hang does not cost the rest. OUT_DIR gets four
# files: check.log (every step's output), steps.txt (exit status and seconds per step),
# resnet_metrics.csv (each ResNet run's metrics rows) and sweep_trials.csv.
# DEVICE=cpu CIFAR_PER_BATCH=200 SKIP_TESTS=1 bash bench/gpu_check.sh /tmp/check  tries the script on a CPU.
set -u
DEVICE=${DEVICE:-cuda}
OUT_DIR=${1:-${OUT:-gpu-check}}
mkdir -p "$OUT_DIR"
: >"$OUT_DIR/steps.txt"; : >"$OUT_DIR/check.log"; : >"$OUT_DIR/resnet_metrics.csv"
REPO=$(pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d)  # optlab runs from outside the repository, as users run it
step() {  # step NAME SECONDS COMMAND...: run, log, print the tail and the exit status
  local name=$1 limit=$2; shift 2
  local started=$SECONDS
  echo "=== $name"
  (cd "$WORK" && timeout "$limit" "$@") >"$WORK/$name.log" 2>&1
  local rc=$?
  { echo "=== $name: $*"; cat "$WORK/$name.log"; } >>"$OUT_DIR/check.log"
  tail -n "${TAIL:-6}" "$WORK/$name.log"
  echo "=== $name: exit $rc in $((SECONDS - started)) s"
  echo "$name exit=$rc seconds=$((SECONDS - started))" >>"$OUT_DIR/steps.txt"
}
metrics_tail() {  # the last run's final metrics row; all its rows to resnet_metrics.csv
  local metrics
  metrics="$(ls -td "$WORK"/o/runs/*/ | head -1)metrics.csv"
  tail -n 1 "$metrics"
  { echo "# $1"; cat "$metrics"; } >>"$OUT_DIR/resnet_metrics.csv"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
step cifar_files 120 python3 "$REPO/bench/write_cifar10.py" "$WORK/cifar" --per-batch "${CIFAR_PER_BATCH:-10000}"

# the issue's command as written (defaults: plain SGD, no normalization), then a ResNet that learns
# this data in a few epochs (batch norm, momentum) in each precision and data path
step resnet_issue_command 150 python3 -m optlab train data=cifar10 model=resnet "trainer.device=$DEVICE" \
     trainer.precision=bf16 "data.root=$WORK/cifar" "trainer.out_dir=$WORK/o" trainer.epochs=2 trainer.progress=false
metrics_tail resnet_issue_command
RESNET=(data=cifar10 "data.root=$WORK/cifar" model=resnet norm=batch optimizer=momentum optimizer.lr=0.05
        "trainer.device=$DEVICE" trainer.progress=false "trainer.out_dir=$WORK/o" trainer.epochs=5 batch.size=256)
step resnet_bf16 150 python3 -m optlab train "${RESNET[@]}" trainer.precision=bf16
metrics_tail resnet_bf16
step resnet_fp16_channels_last 150 python3 -m optlab train "${RESNET[@]}" trainer.precision=16 trainer.channels_last=true
metrics_tail resnet_fp16_channels_last
step resnet_fp32 150 python3 -m optlab train "${RESNET[@]}" trainer.precision=32
metrics_tail resnet_fp32
step resnet_bf16_compile 240 python3 -m optlab train "${RESNET[@]}" trainer.precision=bf16 trainer.compile=true
metrics_tail resnet_bf16_compile
step resnet_streamed 150 python3 -m optlab train "${RESNET[@]}" trainer.precision=bf16 trainer.data_on_device=false
metrics_tail resnet_streamed

TAIL=12 step train_overhead 240 python3 "$REPO/bench/train_overhead.py" --device "$DEVICE" --repeats 3
TAIL=8 step data_path 120 python3 "$REPO/bench/data_path.py" --device "$DEVICE" --repeats 3
step sweep_4_per_gpu 180 python3 -m optlab sweep lr_wd --trials 16 --per-gpu 4 "trainer.out_dir=$WORK/o"
cp "$(ls -td "$WORK"/o/sweeps/*/ | head -1)trials.csv" "$OUT_DIR/sweep_trials.csv" 2>/dev/null
[ -n "${SKIP_TESTS:-}" ] || TAIL=15 step pytest 240 python3 -m pytest -q -n 8 -p no:cacheprovider "$REPO/tests"
cat "$OUT_DIR/steps.txt"
