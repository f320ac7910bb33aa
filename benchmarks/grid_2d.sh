#!/usr/bin/env bash
# The converged 2d grid, resumable (run it again to continue; finished models and evaluations are kept):
#   bash benchmarks/grid_2d.sh ITERATIONS [WORKSPACE] [RESULTS]
# 1. the noise floor: dropout fold 0 trained a second time; 2. fold by fold, the main comparisons, then the forms in
# contention (folds 0-2; they read the main trainers' folds from the main tables), so that each finished fold holds
# every trainer; 3. the main comparisons' folds 3-4. Every model's per-case table is written to
# RESULTS as soon as it is evaluated (--evaluate-each). ITERATIONS comes from the learning curve
# (docs/learning_curve/learning_curve.md). A new workspace continues from the tables committed under RESULTS
# (--tables): it retrains only a reused teacher that a student still needs, and the noise floor once measured is skipped.
set -euo pipefail
B="${1:?usage: grid_2d.sh ITERATIONS [WORKSPACE] [RESULTS]}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WS="${2:-$HERE/results/accuracy_2d}"
OUT="${3:-$HERE/../docs/accuracy_2d}"
PY="${PYTHON:-python}"
# Within a fold the trainings run in this order, each student right after its teacher: a machine that is lost
# between the two (a fresh one has no workspace) would otherwise have to train the teacher again.
MAIN=(nnUNetTrainer nnUNetTrainerModalityDropout nnUNetTrainerKDStudent nnUNetTrainerMTGTeacherNoAlign
      nnUNetTrainerMTGTeacher nnUNetTrainerMTGStudent)
FORMS=(nnUNetTrainerModalityDropout nnUNetTrainerKDStudent nnUNetTrainerProtoKDStudent nnUNetTrainerMTGTeacherNoAlign
       nnUNetTrainerMTGTeacher nnUNetTrainerMTGStudent nnUNetTrainerMTGTeacherMixture
       nnUNetTrainerMTGTeacherFirstBlock nnUNetTrainerMTGStudentFirstBlock)
tables() {  # the per_case/ folders of $@ that hold tables, as --tables arguments
  local found=()
  for d in "$@"; do [ -f "$d/accuracy/per_case/run.json" ] && found+=("$d/accuracy/per_case"); done
  [ ${#found[@]} -gt 0 ] && echo "--tables ${found[*]}" || true
}
if [ -f "$OUT/noise_floor.md" ]; then
  echo "noise floor already measured ($OUT/noise_floor.md): skipped"
else
  "$PY" "$HERE/noise_floor.py" -c 2d --iterations "$B" --workspace "$WS" --results "$OUT" || echo "noise floor failed; the grid goes on"
fi
# shellcheck disable=SC2046
main() { "$PY" "$HERE/accuracy.py" -c 2d --iterations "$B" --trainers "${MAIN[@]}" --evaluate-each \
  --workspace "$WS" --results "$OUT" --folds "$@" $(tables "$OUT"); }
# shellcheck disable=SC2046
forms() { "$PY" "$HERE/accuracy.py" -c 2d --iterations "$B" --trainers "${FORMS[@]}" --evaluate-each \
  --workspace "$WS" --results "$OUT/forms" --folds "$@" $(tables "$OUT" "$OUT/forms"); }
main 0 && forms 0 && main 0 1 && forms 0 1 && main 0 1 2 && forms 0 1 2 && main 0 1 2 3 4
