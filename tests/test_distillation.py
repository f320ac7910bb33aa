"""Distillation terms against hand-computed values; teacher lookup and compatibility checks."""
import copy
import math

import pytest
import torch

from nnunetv2_mtg.distillation import kd_loss, kd_sigmoid, kd_softmax, latent_kl
from nnunetv2_mtg.env import UserInputError
from nnunetv2_mtg.teacher import check_compatible, paired_teacher_name

KL_75_50 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(Bern(.75) || Bern(.5))


def _logits(values, shape=(2, 2, 3, 3, 3)):
    out = torch.empty(shape)
    for c, v in enumerate(values):
        out[:, c] = v
    return out


def test_softmax_kd_hand_values():
    teacher, student = _logits([math.log(3.0), 0.0]), _logits([0.0, 0.0])
    assert kd_softmax(student, teacher, 1.0).item() == pytest.approx(KL_75_50, rel=1e-5)
    p = math.sqrt(3) / (math.sqrt(3) + 1)  # softmax([ln 3 / 2, 0])
    expected = 4 * (p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5))
    assert kd_softmax(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-5)
    assert kd_softmax(teacher, teacher, 2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_protokd_scale_averages_over_classes():
    """ProtoKD's code averages the KL's pointwise terms over the classes (and does not multiply by T^2): with 4
    classes its term is a quarter of the summed one. Hand values at T = 10: teacher logits (10 ln 3, 0, 0, 0) ->
    p = (3, 1, 1, 1) / 6; student uniform -> q = 1/4."""
    teacher, student = _logits([10 * math.log(3.0), 0.0, 0.0, 0.0], (1, 4, 2, 2, 2)), torch.zeros(1, 4, 2, 2, 2)
    p = [0.5, 1 / 6, 1 / 6, 1 / 6]
    summed = sum(pi * math.log(pi / 0.25) for pi in p)
    assert kd_loss(student, teacher, 10.0, regions=False, t_squared=False).item() == pytest.approx(summed, rel=1e-5)
    assert kd_loss(student, teacher, 10.0, regions=False, t_squared=False, class_mean=True).item() == \
        pytest.approx(summed / 4, rel=1e-5)
    from nnunetv2_mtg.trainers.nnUNetTrainerProtoKDStudent import nnUNetTrainerProtoKDStudent

    assert nnUNetTrainerProtoKDStudent.kd_class_mean and not nnUNetTrainerProtoKDStudent.kd_t_squared


def test_stem_latent_distance_is_scale_invariant():
    from nnunetv2_mtg.distillation import stem_feature_distance

    torch.manual_seed(0)
    s, t = torch.randn(2, 8, 6, 6, 6), torch.randn(2, 8, 6, 6, 6)
    base = stem_feature_distance(s, t).item()
    assert base > 0.5
    for scale in (0.05, 20.0):
        assert stem_feature_distance(s * scale, t).item() == pytest.approx(base, rel=1e-4)
        assert stem_feature_distance(s, t * scale).item() == pytest.approx(base, rel=1e-4)
    assert stem_feature_distance(t * 0.05 + 1.0, t).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("shape", [(2, 8, 6, 6, 6), (2, 8, 6, 6)], ids=["3d", "2d"])
def test_stem_latent_distance_on_pooled_blocks(shape):
    """pool=2 compares 2^d-voxel block means: maps constant within blocks score as unpooled, a difference that
    alternates within every block vanishes, and it stays scale-invariant."""
    from nnunetv2_mtg.distillation import stem_feature_distance

    torch.manual_seed(0)
    d = len(shape) - 2
    coarse = [torch.randn(*shape[:2], *[n // 2 for n in shape[2:]]) for _ in range(2)]
    up = [c.repeat_interleave(2, 2).repeat_interleave(2, 3) for c in coarse]
    if d == 3:
        up = [u.repeat_interleave(2, 4) for u in up]
    s, t = up
    assert stem_feature_distance(s, t, 2).item() == pytest.approx(stem_feature_distance(s, t).item(), rel=1e-5)
    assert stem_feature_distance(s, t, 2).item() > 0.5
    checker = torch.ones(shape[2:])
    checker[(slice(None, None, 2),)] = -1.0  # +-1 alternating along the first spatial axis: block mean 0
    assert stem_feature_distance(t + checker, t, 2).item() == pytest.approx(0.0, abs=1e-6)
    assert stem_feature_distance(t + checker, t, 1).item() > 0.1
    assert stem_feature_distance(s * 20.0, t, 2).item() == pytest.approx(stem_feature_distance(s, t, 2).item(),
                                                                          rel=1e-4)


def test_sigmoid_kd_hand_values():
    # region 0: teacher p = 0.75 vs student 0.5; region 1: equal -> mean over the two regions
    teacher, student = _logits([math.log(3.0), 1.0]), _logits([0.0, 1.0])
    assert kd_sigmoid(student, teacher, 1.0).item() == pytest.approx(KL_75_50 / 2, rel=1e-5)
    # extreme logits stay finite
    assert torch.isfinite(kd_sigmoid(_logits([-80.0, 80.0]), _logits([80.0, -80.0]), 1.0))


def test_kd_uses_the_full_resolution_output():
    teacher = _logits([math.log(3.0), 0.0])
    deep_supervision = [_logits([0.0, 0.0]), _logits([5.0, -5.0], (2, 2, 2, 2, 2))]
    assert kd_loss(deep_supervision, teacher, 1.0, regions=False).item() == pytest.approx(KL_75_50, rel=1e-5)
    # ProtoKD's own form: the temperature-scaled KL without the T^2 factor
    scaled = kd_loss(deep_supervision, teacher, 10.0, regions=False)
    unscaled = kd_loss(deep_supervision, teacher, 10.0, regions=False, t_squared=False)
    assert unscaled.item() == pytest.approx(scaled.item() / 100, rel=1e-6)


def test_latent_kl_hand_values():
    shape = (1, 4, 2, 2, 2)
    teacher = {3: (torch.full(shape, 2.0), torch.full(shape, math.log(9.0)))}  # N(2, 9)
    student = {3: (torch.zeros(shape), torch.zeros(shape))}  # N(0, 1)
    # KL(N(2, 9) || N(0, 1)) = 0.5 * (9 + 4 - 1 - ln 9)
    assert latent_kl(student, teacher).item() == pytest.approx(0.5 * (12 - math.log(9)), rel=1e-5)


def test_paired_teacher_names():
    assert paired_teacher_name("nnUNetTrainerMTGStudent", "nnUNetTrainerMTGTeacher") == "nnUNetTrainerMTGTeacher"
    assert paired_teacher_name("nnUNetTrainerMTGStudent_smoke", "nnUNetTrainerMTGTeacher") == \
        "nnUNetTrainerMTGTeacher_smoke"
    assert paired_teacher_name("nnUNetTrainerKDStudent_50epochs", "nnUNetTrainerModalityDropout") == \
        "nnUNetTrainerModalityDropout_50epochs"
    assert paired_teacher_name("nnUNetTrainerMTGStudent_1epoch", "nnUNetTrainerMTGTeacher") == \
        "nnUNetTrainerMTGTeacher_1epoch"
    assert paired_teacher_name("nnUNetTrainerMTGStudent_T2", "nnUNetTrainerMTGTeacher") == "nnUNetTrainerMTGTeacher"


def test_every_schedule_variant_finds_its_paired_teacher():
    """A student of any schedule of SCHEDULES (the demo trains `_demo`) finds the teacher of the same schedule."""
    from nnunetv2_mtg.schedules import SCHEDULES

    for suffix in SCHEDULES:
        assert paired_teacher_name("nnUNetTrainerMTGStudent" + suffix, "nnUNetTrainerMTGTeacher") == \
            "nnUNetTrainerMTGTeacher" + suffix


def test_students_get_the_student_schedules_from_their_teacher_attribute():
    """add_schedule_variants gives a class with a teacher_trainer (every student, a user's too) the student's demo
    schedule, which starts from the teacher; a teacher's demo variant trains from scratch."""
    from nnunetv2_mtg.schedules import DemoStudentSchedule, add_schedule_variants
    from nnunetv2_mtg.trainers import nnUNetTrainerKDStudent, nnUNetTrainerMTGStudent, nnUNetTrainerProtoKDStudent
    from nnunetv2_mtg.trainers import nnUNetTrainerMTGTeacher

    for module, name in ((nnUNetTrainerMTGStudent, "nnUNetTrainerMTGStudent"),
                         (nnUNetTrainerMTGStudent, "nnUNetTrainerMTGStudentFirstBlock"),
                         (nnUNetTrainerKDStudent, "nnUNetTrainerKDStudent"),
                         (nnUNetTrainerProtoKDStudent, "nnUNetTrainerProtoKDStudent")):
        assert issubclass(getattr(module, name + "_demo"), DemoStudentSchedule), name
    for name in ("nnUNetTrainerMTGTeacher", "nnUNetTrainerMTGTeacherFirstBlock", "nnUNetTrainerMTGTeacherNoAlign"):
        assert not issubclass(getattr(nnUNetTrainerMTGTeacher, name + "_demo"), DemoStudentSchedule), name
    namespace = {"__name__": "users_trainers"}
    mine = type("MyStudent", (nnUNetTrainerMTGStudent.nnUNetTrainerMTGStudent,), {"teacher_trainer": "MyTeacher"})
    add_schedule_variants(namespace, mine)
    assert issubclass(namespace["MyStudent_demo"], DemoStudentSchedule) and "MyStudent_250epochs" in namespace


def _init():
    dj = {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}, "regions_class_order": [1, 2, 3],
          "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}}
    cfg = {"data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
           "patch_size": [48, 48, 48], "median_image_size_in_voxels": [50, 60, 50], "spacing": [3.0, 3.0, 3.0],
           "normalization_schemes": ["ZScoreNormalization"] * 4, "use_mask_for_norm": [False] * 4,
           "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
           "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {},
           "resampling_fn_probabilities": "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {},
           "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []},
           "batch_dice": False}
    plans = {"dataset_name": "Dataset950_X", "plans_name": "p", "transpose_forward": [0, 1, 2],
             "transpose_backward": [0, 1, 2], "original_median_spacing_after_transp": [3, 3, 3],
             "original_median_shape_after_transp": [50, 60, 50], "image_reader_writer": "SimpleITKIO",
             "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": {"mean": 1.0}},
             "experiment_planner_used": "x", "configurations": {"3d_fullres": cfg}}
    return {"dataset_json": dj, "plans": plans, "configuration": "3d_fullres"}


@pytest.mark.parametrize("change, message", [
    (lambda i: i["dataset_json"].update(channel_names={"0": "T1ce", "1": "T1", "2": "T2", "3": "Flair"}),
     "input channels differ"),
    (lambda i: i["dataset_json"].pop("regions_class_order"), "labels/regions differ"),
    (lambda i: i["dataset_json"]["labels"].update({"enhancing tumor": [2]}), "labels/regions differ"),
    (lambda i: i["plans"]["configurations"]["3d_fullres"].update(spacing=[1.0, 1.0, 1.0]), "spacing differs"),
    (lambda i: i["plans"]["configurations"]["3d_fullres"].update(normalization_schemes=["CTNormalization"] * 4),
     "normalization_schemes differs"),
    (lambda i: i["plans"].update(foreground_intensity_properties_per_channel={"0": {"mean": 2.0}}),
     "foreground_intensity_properties_per_channel"),
])
def test_each_incompatibility_is_named(change, message):
    student = _init()
    check_compatible(copy.deepcopy(student), student["plans"], "3d_fullres", student["dataset_json"], "t.pth")
    teacher = copy.deepcopy(student)
    change(teacher)
    with pytest.raises(UserInputError, match=message):
        check_compatible(teacher, student["plans"], "3d_fullres", student["dataset_json"], "t.pth")


def test_prototype_term_on_a_tiny_example():
    from nnunetv2_mtg.distillation import prototype_loss, prototype_similarity

    # one sample, 2 feature channels, 4 voxels; class 0 = voxels 0, 1; class 1 = voxels 2, 3; class 2 absent
    teacher = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    masks = torch.tensor([[[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]]], dtype=torch.bool)
    sim, present = prototype_similarity(teacher, masks)
    assert present.tolist() == [[True, True, False]]
    assert sim[0, :2].tolist() == [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
    assert prototype_loss(teacher, teacher, masks).item() == 0.0
    # the student's voxel 1 is (1, 1): its class-0 prototype is (1, 0.5), class 1 stays (0, 1)
    student = teacher.clone()
    student[0, 1, 1] = 1.0
    p0 = math.sqrt(1.25)
    s0 = [1 / p0, 1.5 / (math.sqrt(2) * p0), 0.5 / p0, 0.5 / p0]
    s1 = [0.0, 1 / math.sqrt(2), 1.0, 1.0]
    t0, t1 = [1, 1, 0, 0], [0, 0, 1, 1]
    expected = (sum((a - b) ** 2 for a, b in zip(s0, t0)) / 4 + sum((a - b) ** 2 for a, b in zip(s1, t1)) / 4) / 2
    assert prototype_loss(student, teacher, masks).item() == pytest.approx(expected, rel=1e-5)


def test_prototype_term_survives_float16_autocast():
    """nnU-Net trains under float16 autocast on a GPU, which runs einsum in float16: a prototype sums a class's
    features over a whole patch and overflowed (ProtoKD trained to NaN on an H200). Same value as in float32."""
    from nnunetv2_mtg.distillation import prototype_loss

    torch.manual_seed(0)
    teacher = torch.rand(1, 4, 40, 40, 40) * 10 + 5  # 64000 voxels x ~10: class sums far above float16's 65504
    student = teacher + torch.randn_like(teacher)
    masks = torch.zeros(1, 2, 40, 40, 40, dtype=torch.bool)
    masks[:, 0, :20], masks[:, 1, 20:] = True, True
    expected = prototype_loss(student, teacher, masks).item()
    assert expected > 1e-5
    with torch.autocast("cpu", dtype=torch.float16):
        got = prototype_loss(student, teacher, masks)
    assert math.isfinite(got.item()) and got.item() == pytest.approx(expected, rel=1e-4)


def test_prototype_classes_from_nnunet_targets():
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    from nnunetv2_mtg.distillation import class_masks

    labels = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 4)
    label_based = LabelManager({"background": 0, "edema": 1, "necrosis": 2, "enhancing": 3}, None)
    m = class_masks([labels, labels[..., :2]], label_based)  # a deep-supervision list: full resolution only
    assert m.shape == (1, 4, 4) and m[0].int().tolist() == torch.eye(4, dtype=torch.int).tolist()
    regions = LabelManager({"background": 0, "wt": [1, 2, 3], "tc": [2, 3], "et": 3}, [1, 2, 3])
    target = torch.tensor([[[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]], dtype=torch.float32)  # WT, TC, ET channels
    m = class_masks(target, regions)
    assert m[0].int().tolist() == [[1, 0, 0, 0], [0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]


def test_decoder_feature_tap_survives_torch_compile():
    """nnU-Net compiles the network on CUDA: a tap made before that keeps working in the compiled graph."""
    from nnunetv2_mtg.distillation import DecoderFeatureTap
    from helpers import small_unet

    net = small_unet(deep_supervision=False)
    student_tap = DecoderFeatureTap(net, only_in_training=True)
    teacher_tap = DecoderFeatureTap(net)
    compiled = torch.compile(net, backend="aot_eager")
    x = torch.randn(1, 4, 32, 32, 32)
    out = compiled(x)
    assert student_tap.features.shape == (1, 8, 32, 32, 32)
    torch.testing.assert_close(net.decoder.seg_layers[-1](student_tap.features), out)
    student_tap.clear()
    teacher_tap.clear()
    compiled.eval()
    with torch.no_grad():
        compiled(x)
    assert student_tap.features is None  # nothing kept at inference
    assert teacher_tap.features.shape == (1, 8, 32, 32, 32)  # the frozen teacher runs in eval mode
