#!/usr/bin/env bash
# `make demo`: the whole job on the embedded phantom, in ./demo_data (delete it with `make clean-demo`).
# Phantom -> stock planning/preprocessing -> cpu_tiny plans -> training with our trainers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD/demo_data"
export nnUNet_raw="$ROOT/nnUNet_raw" nnUNet_preprocessed="$ROOT/nnUNet_preprocessed" nnUNet_results="$ROOT/nnUNet_results"
export nnUNet_compile="${nnUNet_compile:-f}"
eval "$(nnUNetv2_mtg_paths --export)"
ID="${DEMO_DATASET_ID:-900}"
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"

if [ ! -d "$nnUNet_raw/Dataset${ID}_BraTSPhantom" ]; then
  nnUNetv2_mtg_phantom -d "$ID" -n 40 --test 8 --seed 0
fi
if [ ! -f "$nnUNet_preprocessed/Dataset${ID}_BraTSPhantom/nnUNetPlans.json" ]; then
  nnUNetv2_plan_and_preprocess -d "$ID" -c 3d_fullres --verify_dataset_integrity
fi
nnUNetv2_mtg_plans -d "$ID" --preset cpu_tiny

PLANS=nnUNetPlans_cpu_tiny
TEACHER=nnUNetTrainerMTGTeacher_5epochs
DEVICE="${DEMO_DEVICE:-cpu}"
# the aligned teacher (about 10 minutes on 2 CPU cores); skipped when already trained
if [ ! -f "$nnUNet_results/Dataset${ID}_BraTSPhantom/${TEACHER}__${PLANS}__3d_fullres/fold_0/checkpoint_final.pth" ]; then
  nnUNetv2_train "$ID" 3d_fullres 0 -tr "$TEACHER" -p "$PLANS" -device "$DEVICE"
fi
nnUNetv2_predict -i "$nnUNet_raw/Dataset${ID}_BraTSPhantom/imagesTs" -o "$ROOT/predictions/$TEACHER" \
  -d "$ID" -c 3d_fullres -tr "$TEACHER" -p "$PLANS" -f 0 -device "$DEVICE" --disable_tta
echo "demo done: predictions in $ROOT/predictions, training curves in $nnUNet_results/Dataset${ID}_BraTSPhantom/*/fold_0/progress.png"
