#!/usr/bin/env bash
# The converged 2d grid, resumable (run it again to continue; finished models and evaluations are kept):
#   bash benchmarks/grid_2d.sh ITERATIONS [WORKSPACE] [RESULTS]
# 1. the noise floor: dropout fold 0 trained a second time; 2. the main comparisons over folds 0-4; 3. the forms in
# contention over folds 0-2 (the main trainers' folds 0-2 are reused from step 2). Every model's per-case table is
# written to RESULTS as soon as it is evaluated (--evaluate-each). ITERATIONS comes from the learning curve
# (docs/learning_curve/learning_curve.md). A new workspace continues from the tables committed under RESULTS
# (--tables): it retrains only a reused teacher that a student still needs, and the noise floor once measured is skipped.
set -euo pipefail
B="${1:?usage: grid_2d.sh ITERATIONS [WORKSPACE] [RESULTS]}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WS="${2:-$HERE/results/accuracy_2d}"
OUT="${3:-$HERE/../docs/accuracy_2d}"
PY="${PYTHON:-python}"
MAIN=(nnUNetTrainer nnUNetTrainerModalityDropout nnUNetTrainerMTGTeacherNoAlign nnUNetTrainerMTGTeacher
      nnUNetTrainerKDStudent nnUNetTrainerMTGStudent)
FORMS=(nnUNetTrainerModalityDropout nnUNetTrainerMTGTeacherNoAlign nnUNetTrainerMTGTeacher
       nnUNetTrainerMTGTeacherMixture nnUNetTrainerMTGTeacherFirstBlock nnUNetTrainerKDStudent
       nnUNetTrainerMTGStudent nnUNetTrainerMTGStudentFirstBlock nnUNetTrainerProtoKDStudent)
tables() { [ -f "$1/accuracy/per_case/run.json" ] && echo "--tables $1/accuracy/per_case" || true; }
if [ -f "$OUT/noise_floor.md" ]; then
  echo "noise floor already measured ($OUT/noise_floor.md): skipped"
else
  "$PY" "$HERE/noise_floor.py" -c 2d --iterations "$B" --workspace "$WS" --results "$OUT" || echo "noise floor failed; the grid goes on"
fi
# shellcheck disable=SC2046
"$PY" "$HERE/accuracy.py" -c 2d --iterations "$B" --folds 0 1 2 3 4 --trainers "${MAIN[@]}" --evaluate-each \
  --workspace "$WS" --results "$OUT" $(tables "$OUT")
"$PY" "$HERE/accuracy.py" -c 2d --iterations "$B" --folds 0 1 2 --trainers "${FORMS[@]}" --evaluate-each \
  --workspace "$WS" --results "$OUT/forms" $(tables "$OUT/forms")
