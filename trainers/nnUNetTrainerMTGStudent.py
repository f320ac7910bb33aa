"""MTG students (docs/design.md): aligned like their teacher, see missing modalities, learn from the frozen
MTG teacher of the same form, dataset, plans, configuration and fold. Every form in nnunetv2_mtg/forms.py `FORMS`
gets `nnUNetTrainerMTGStudent<suffix>` here, taught by `nnUNetTrainerMTGTeacher<suffix>`; `declare_form` makes both
for a form of your own (docs/design.md).

loss = nnU-Net's loss + lambda_kd * KD(teacher logits)
       + lambda_lat * (KL(teacher latent || student latent) and/or the stem features' distance to the teacher's)
       + lambda_align * (the student's own alignment terms)
"""
from nnunetv2_mtg.forms import FORMS, STUDENT_PREFIX, TEACHER_PREFIX, form_trainer
from nnunetv2_mtg.schedules import add_fixed_subset_variants, add_schedule_variants
from nnunetv2_mtg.student import DistillationMixin
from nnunetv2_mtg.trainers.nnUNetTrainerMTGTeacher import declare_teacher, nnUNetTrainerMTGTeacher


class nnUNetTrainerMTGStudent(DistillationMixin, nnUNetTrainerMTGTeacher):
    teacher_trainer = "nnUNetTrainerMTGTeacher"
    p_full = None  # uniform over all 15 subsets, the full input being one of them
    lambda_kd = 1.0
    kd_temperature = 2.0
    lambda_lat = 0.1  # lambda_align: the form's (forms.py), as the teacher's


add_fixed_subset_variants(globals(), nnUNetTrainerMTGStudent)  # nnUNetTrainerMTGStudent_T1, _T1ce, _T2, _FLAIR


def declare_student(namespace: dict, suffix: str, form: type) -> type:
    """nnUNetTrainerMTGStudent<suffix> with the form mixin, taught by nnUNetTrainerMTGTeacher<suffix>, and its
    schedule variants, in a module's namespace."""
    student = form_trainer(nnUNetTrainerMTGStudent, STUDENT_PREFIX, suffix, form, namespace["__name__"],
                           teacher_trainer=TEACHER_PREFIX + suffix)
    namespace[student.__name__] = student
    add_schedule_variants(namespace, student)
    return student


def declare_form(namespace: dict, suffix: str, form: type) -> tuple[type, type]:
    """A form of your own in one call, in a file of your nnUNet_extTrainer folder (pass `globals()`): its teacher
    nnUNetTrainerMTGTeacher<suffix>, its student nnUNetTrainerMTGStudent<suffix> and their schedule variants."""
    return declare_teacher(namespace, suffix, form), declare_student(namespace, suffix, form)


for _suffix, _form in FORMS.items():
    declare_student(globals(), _suffix, _form)
# <trainer>_smoke, _demo, _1epoch, _2epochs, _5epochs, _50epochs, _250epochs of the default student
add_schedule_variants(globals(), nnUNetTrainerMTGStudent)
