#!/usr/bin/env bash
# `make demo`: the whole job on the embedded phantom, in ./demo_data (delete it with `make clean-demo`).
# Phantom -> stock planning/preprocessing -> CPU-sized plans -> MTG teacher -> MTG student (the default form) ->
# 15-subset evaluation -> prediction of incomplete cases (expected Dice per case, a picture of each) -> modality gap
# and bypass check. nnU-Net's 2d configuration by default: its CPU-sized network converges on 2 cores within the
# demo's minutes (docs/measurements.md); DEMO_CONFIGURATION=3d_fullres runs the 3d path (one epoch: its Dice is noise).
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
CONFIGURATION="${DEMO_CONFIGURATION:-2d}"
case "$CONFIGURATION" in
  2d) PRESET=cpu_2d ;;
  3d_fullres) PRESET=cpu_tiny ;;
  *) echo "DEMO_CONFIGURATION=$CONFIGURATION: say 2d or 3d_fullres" >&2; exit 2 ;;
esac
PLANS="nnUNetPlans_$PRESET"
DEVICE="${DEMO_DEVICE:-cpu}"
# 2d: the teacher eight epochs of 250 iterations, the student five, starting from the teacher's weights; 3d_fullres:
# one each (nnunetv2_mtg/schedules.py DemoSchedule, DemoStudentSchedule). Either way the final validation runs
# without test-time mirroring. DEMO_SCHEDULE=_50epochs trains longer (the student then from scratch).
SCHEDULE="${DEMO_SCHEDULE:-_demo}"
TEACHER="nnUNetTrainerMTGTeacher$SCHEDULE"
STUDENT="nnUNetTrainerMTGStudent$SCHEDULE"
echo "demo: nnU-Net's $CONFIGURATION configuration with the $PRESET preset on $DEVICE ($TEACHER, then $STUDENT,"
echo "      which starts from the teacher's weights in the demo)."
echo "      On a GPU and real data you would train 3d_fullres with nnU-Net's own plans: README, 'Quick start on BraTS'."
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"
RAW="$nnUNet_raw/Dataset${ID}_BraTSPhantom"
PRE="$nnUNet_preprocessed/Dataset${ID}_BraTSPhantom"
RESULTS="$nnUNet_results/Dataset${ID}_BraTSPhantom"

if [ ! -d "$RAW" ]; then
  # 16 training and 4 test cases at 4 mm keep the demo within 20 minutes on 2 cores (docs/measurements.md);
  # DEMO_TRAIN_CASES, DEMO_TEST_CASES and DEMO_SPACING (3: the accuracy experiment's) change them
  nnUNetv2_mtg_phantom -d "$ID" -n "${DEMO_TRAIN_CASES:-16}" --test "${DEMO_TEST_CASES:-4}" --spacing "${DEMO_SPACING:-4}" \
    --seed 0
fi
if [ ! -d "$PRE/nnUNetPlans_$CONFIGURATION" ]; then
  nnUNetv2_plan_and_preprocess -d "$ID" -c "$CONFIGURATION" --verify_dataset_integrity
fi
nnUNetv2_mtg_plans -d "$ID" --preset "$PRESET"

# teacher (masking + alignment), then the student that finds it by itself; each skipped when already trained
for TRAINER in "$TEACHER" "$STUDENT"; do
  if [ ! -f "$RESULTS/${TRAINER}__${PLANS}__${CONFIGURATION}/fold_0/checkpoint_final.pth" ]; then
    nnUNetv2_train "$ID" "$CONFIGURATION" 0 -tr "$TRAINER" -p "$PLANS" -device "$DEVICE"
  fi
done

# both models over all 15 modality subsets of the held-out test cases, side by side, with paired differences; the
# evaluation stays beside each model, so the prediction below can say what Dice to expect for each case's subset
nnUNetv2_mtg_evaluate -d "$ID" -c "$CONFIGURATION" -p "$PLANS" -tr "$TEACHER" "$STUDENT" -f 0 -device "$DEVICE" \
  -i "$RAW/imagesTs" -l "$RAW/labelsTs" -o "$ROOT/evaluation"

# the student on the test cases, T1ce and FLAIR missing in the first, FLAIR in the second, as a BraTS 2023 submission
INPUT="$ROOT/incomplete_cases"
rm -rf "$INPUT" && cp -r "$RAW/imagesTs" "$INPUT"
CASES=($(ls "$INPUT" | sed 's/_000[0-9].nii.gz$//' | sort -u))
rm "$INPUT/${CASES[0]}_0001.nii.gz" "$INPUT/${CASES[0]}_0003.nii.gz" "$INPUT/${CASES[1]}_0003.nii.gz"
PRED="$ROOT/predictions/$STUDENT"
nnUNetv2_mtg_predict -i "$INPUT" -o "$PRED" -d "$ID" -c "$CONFIGURATION" -tr "$STUDENT" -p "$PLANS" -f 0 \
  -device "$DEVICE" --disable_tta --brats-labels 2023 --save_png

# modality gap and bypass check of both
nnUNetv2_mtg_gap -d "$ID" -c "$CONFIGURATION" -p "$PLANS" -tr "$TEACHER" "$STUDENT" -f 0 -device "$DEVICE" \
  -i "$RAW/imagesTs" -l "$RAW/labelsTs" -o "$ROOT/gap"
echo
cat "$ROOT/evaluation/comparison.md"
echo
echo "demo done ($CONFIGURATION):"
echo "  pictures of the predictions: $PRED/<case>.png (each channel, the missing ones named, and the prediction)"
echo "  the submission-style predictions and their record (expected Dice per case): $PRED"
echo "  15-subset tables and heatmaps: $ROOT/evaluation; modality gap and bypass check: $ROOT/gap"
echo "  training curves: $RESULTS/*/fold_0/progress.png"
if [ "$CONFIGURATION" = "3d_fullres" ] && [ "$SCHEDULE" = "_demo" ]; then
  echo "These 3d models trained one epoch of 250 iterations: their Dice is noise. DEMO_SCHEDULE=_50epochs trains longer."
fi
echo "Whether alignment helps, with the spread over repeats: docs/RESULTS.md."
