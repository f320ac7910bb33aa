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
