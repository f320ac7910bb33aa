"""MTG teachers: modality masking + alignment to an anchor (docs/design.md), one trainer per form.

loss = nnU-Net's loss + lambda_align * (KL(q(z | x * m) || N(0, I)) at the aligned encoder stages
                                        and/or the stem anchor loss)

`nnUNetTrainerMTGTeacher` has the default form, the mixture stem with the scale-dependent (raw) loss (why:
docs/RESULTS.md). Every form in nnunetv2_mtg/forms.py `FORMS` gets `nnUNetTrainerMTGTeacher<suffix>` here: the
form's mixin before the default class sets its attributes, its weight included. `...NoAlign` is the default form
with lambda_align = 0: the ablation of the alignment.
"""
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_mtg.alignment import check_plans_network, unwrap
from nnunetv2_mtg.forms import FORMS, TEACHER_PREFIX, MixtureStemRawLossForm, form_trainer, input_channels, read_form, \
    wrap
from nnunetv2_mtg.loss_terms import LossTermsMixin
from nnunetv2_mtg.schedules import add_schedule_variants
from nnunetv2_mtg.trainers.nnUNetTrainerModalityDropout import nnUNetTrainerModalityDropout


class nnUNetTrainerMTGTeacher(MixtureStemRawLossForm, LossTermsMixin, nnUNetTrainerModalityDropout):
    """The default form, the mixture stem, with its weight (nnunetv2_mtg/forms.py lists the attributes; README says
    why this one); a form mixin listed before this class replaces them."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        check_plans_network(plans, configuration)
        arch = PlansManager(plans).get_configuration(configuration).network_arch_init_kwargs
        self.form = read_form(type(self), arch, len(dataset_json["channel_names"]))
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.print_to_log_file(f"alignment form: {self.form.name}")

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        form = read_form(cls, configuration_manager.network_arch_init_kwargs, num_input_channels)
        network = super().build_network_architecture(plans_manager, configuration_manager,
                                                     input_channels(form, num_input_channels), num_output_channels,
                                                     enable_deep_supervision)
        return wrap(form, network, num_input_channels)

    def loss_term_functions(self) -> dict:
        terms = {}
        if self.form.stages:
            terms["kl_align"] = (self.lambda_align, lambda output, target: unwrap(self.network).alignment_loss())
        if self.form.stem_anchor:
            terms["anchor_align"] = (self.lambda_align,
                                     lambda output, target: unwrap(self.network).stem.alignment_loss())
        return terms


class nnUNetTrainerMTGTeacherNoAlign(nnUNetTrainerMTGTeacher):
    """The ablation: the default form's network and substitution without the alignment loss (still logged), so a
    gain of the default teacher splits into architecture (this minus dropout) and alignment (the default minus this)."""

    lambda_align = 0.0


def declare_teacher(namespace: dict, suffix: str, form: type) -> type:
    """nnUNetTrainerMTGTeacher<suffix> with the form mixin, and its schedule variants, in a module's namespace."""
    teacher = form_trainer(nnUNetTrainerMTGTeacher, TEACHER_PREFIX, suffix, form, namespace["__name__"])
    namespace[teacher.__name__] = teacher
    add_schedule_variants(namespace, teacher)
    return teacher


for _suffix, _form in FORMS.items():
    declare_teacher(globals(), _suffix, _form)
# <trainer>_smoke, _demo, _1epoch, _2epochs, _5epochs, _50epochs, _250epochs of each
add_schedule_variants(globals(), nnUNetTrainerMTGTeacher, nnUNetTrainerMTGTeacherNoAlign)
