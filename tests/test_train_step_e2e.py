"""benchmarks/train_step.py end to end on the session's phantom (-d): stock and the default student, a few steps."""
import json
import os
import subprocess

from conftest import BIN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_train_step_benchmark_measures_against_stock(nnunet_env, phantom, tmp_path):
    """Each trainer built by nnU-Net and stepped on the same stored batches: stock's ratios are 1 by definition, the
    student (which also runs its frozen teacher) takes longer per step than stock, and every figure is positive."""
    out = tmp_path / "train_step.json"
    proc = subprocess.run([os.path.join(BIN, "python"), os.path.join(REPO, "benchmarks", "train_step.py"),
                           "--trainers", "nnUNetTrainer", "nnUNetTrainerMTGStudent", "--steps", "3", "--warmup", "1",
                           "-d", str(phantom["id"]), "--json", str(out)],
                          env=nnunet_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result) == ["nnUNetTrainer", "nnUNetTrainerMTGStudent"]
    stock, student = result["nnUNetTrainer"], result["nnUNetTrainerMTGStudent"]
    assert stock["time_ratio"] == 1.0 and stock["memory_ratio"] == 1.0
    assert student["time_ratio"] > 1.0 and student["median_step_s"] > stock["median_step_s"] > 0
    assert student["peak_memory_bytes"] > 0 and stock["peak_memory_bytes"] > 0
    assert "nnUNetTrainerMTGStudent" in proc.stdout and "time ratio" in proc.stdout
