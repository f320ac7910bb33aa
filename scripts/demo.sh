#!/usr/bin/env bash
# `make demo`: the whole job on the embedded phantom, in ./demo_data (delete it with `make clean-demo`).
# Phantom -> stock planning/preprocessing -> cpu_tiny plans -> MTG teacher -> MTG student (the default form) ->
# 15-subset table, modality gap and bypass check. A short training: it shows the tools, not the method's accuracy
# (that is docs/RESULTS.md, made by benchmarks/accuracy.py).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD/demo_data"
export nnUNet_raw="$ROOT/nnUNet_raw" nnUNet_preprocessed="$ROOT/nnUNet_preprocessed" nnUNet_results="$ROOT/nnUNet_results"
export nnUNet_compile="${nnUNet_compile:-f}"
# nnU-Net's final validation starts nnUNet_def_n_proc (default 8) spawned worker processes twice per model, each
# importing torch: on 2 cores that took about a minute per model. No more workers than cores (at most nnU-Net's 8).
CORES=$(nproc)
export nnUNet_def_n_proc="${nnUNet_def_n_proc:-$(( CORES < 8 ? CORES : 8 ))}"
eval "$(nnUNetv2_mtg_paths --export)"
ID="${DEMO_DATASET_ID:-900}"
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"
RAW="$nnUNet_raw/Dataset${ID}_BraTSPhantom"

if [ ! -d "$RAW" ]; then
  # 16 training and 4 test cases at 4 mm (two sliding windows per case) keep the demo within 20 minutes on 2 cores
  # (docs/measurements.md); DEMO_TRAIN_CASES, DEMO_TEST_CASES and DEMO_SPACING (3: the accuracy experiment's) change them
  nnUNetv2_mtg_phantom -d "$ID" -n "${DEMO_TRAIN_CASES:-16}" --test "${DEMO_TEST_CASES:-4}" --spacing "${DEMO_SPACING:-4}" \
    --seed 0
fi
if [ ! -f "$nnUNet_preprocessed/Dataset${ID}_BraTSPhantom/nnUNetPlans.json" ]; then
  nnUNetv2_plan_and_preprocess -d "$ID" -c 3d_fullres --verify_dataset_integrity
fi
nnUNetv2_mtg_plans -d "$ID" --preset cpu_tiny

PLANS=nnUNetPlans_cpu_tiny
DEVICE="${DEMO_DEVICE:-cpu}"
# one epoch of 250 iterations each, final validation without test-time mirroring (docs/measurements.md has the
# measured time); DEMO_SCHEDULE=_5epochs trains longer
SCHEDULE="${DEMO_SCHEDULE:-_demo}"
TEACHER="nnUNetTrainerMTGTeacher$SCHEDULE"
STUDENT="nnUNetTrainerMTGStudent$SCHEDULE"
RESULTS="$nnUNet_results/Dataset${ID}_BraTSPhantom"

# teacher (masking + alignment), then the student that finds it by itself; each skipped when already trained
for TRAINER in "$TEACHER" "$STUDENT"; do
  if [ ! -f "$RESULTS/${TRAINER}__${PLANS}__3d_fullres/fold_0/checkpoint_final.pth" ]; then
    nnUNetv2_train "$ID" 3d_fullres 0 -tr "$TRAINER" -p "$PLANS" -device "$DEVICE"
  fi
done

# the student on the held-out test cases, T1ce and FLAIR missing in one of them, as a BraTS 2023 submission
INPUT="$ROOT/incomplete_cases"
rm -rf "$INPUT" && cp -r "$RAW/imagesTs" "$INPUT"
FIRST=$(ls "$INPUT" | head -n 1 | sed 's/_0000.nii.gz$//')
rm "$INPUT/${FIRST}_0001.nii.gz" "$INPUT/${FIRST}_0003.nii.gz"
nnUNetv2_mtg_predict -i "$INPUT" -o "$ROOT/predictions/$STUDENT" -d "$ID" -c 3d_fullres -tr "$STUDENT" -p "$PLANS" \
  -f 0 -device "$DEVICE" --disable_tta --brats-labels 2023

# both models over all 15 modality subsets, side by side, with paired differences; modality gap and bypass check
nnUNetv2_mtg_evaluate -d "$ID" -c 3d_fullres -p "$PLANS" -tr "$TEACHER" "$STUDENT" -f 0 -device "$DEVICE" \
  -i "$RAW/imagesTs" -l "$RAW/labelsTs" -o "$ROOT/evaluation"
nnUNetv2_mtg_gap -d "$ID" -c 3d_fullres -p "$PLANS" -tr "$TEACHER" "$STUDENT" -f 0 -device "$DEVICE" \
  -i "$RAW/imagesTs" -l "$RAW/labelsTs" -o "$ROOT/gap"
echo
cat "$ROOT/evaluation/comparison.md"
echo "demo done: tables and heatmaps in $ROOT/evaluation and $ROOT/gap, the submission-style predictions and their"
echo "record in $ROOT/predictions/$STUDENT, training curves in $RESULTS/*/fold_0/progress.png."
if [ "$SCHEDULE" = "_demo" ]; then
  echo "These models trained one epoch of 250 iterations: their Dice is noise (mean validation Dice from 0 to 55 in"
  echo "repeated runs on 2 cores; nnU-Net does not fix the seed). DEMO_SCHEDULE=_5epochs trains five times as long."
fi
echo "Whether alignment helps, with the spread over repeats: docs/RESULTS.md (python benchmarks/accuracy.py)."
