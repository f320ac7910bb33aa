"""MTG teachers: modality masking + alignment to an anchor (docs/design.md), one trainer per form.

loss = nnU-Net's loss + lambda_align * (KL(q(z | x * m) || N(0, I)) at the aligned encoder stages
                                        and/or the stem anchor loss)

`nnUNetTrainerMTGTeacher` has the default form, the mixture stem with the scale-dependent (raw) loss at weight 0.1
(why: docs/RESULTS.md). The named forms are `...Bottleneck` (Gaussian head
on the bottleneck), `...AllStages` (on every stage, free bits), `...Mixture` (the mixture stem with the
scale-invariant loss), `...Standin` and `...Gaussian` (modality stem with that anchor kind, invariant loss),
`...MixtureRawLoss` (the default, by the name the experiment trains) and `...FirstBlock` (nnU-Net's first
convolution grouped by modality and aligned); a form mixin listed before the default class sets its attributes, its
weight included. `...NoAlign` is the default form with lambda_align = 0: the ablation of the alignment.
"""
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_mtg.alignment import check_plans_network, unwrap
from nnunetv2_mtg.forms import AllStagesForm, BottleneckForm, FirstBlockForm, GaussianStemForm, MixtureStemForm, \
    MixtureStemRawLossForm, StandinStemForm, input_channels, read_form, wrap
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


class nnUNetTrainerMTGTeacherBottleneck(BottleneckForm, nnUNetTrainerMTGTeacher):
    pass


class nnUNetTrainerMTGTeacherAllStages(AllStagesForm, nnUNetTrainerMTGTeacher):
    pass


class nnUNetTrainerMTGTeacherMixture(MixtureStemForm, nnUNetTrainerMTGTeacher):
    """The mixture stem with the scale-invariant loss."""


class nnUNetTrainerMTGTeacherGaussian(GaussianStemForm, nnUNetTrainerMTGTeacher):
    pass


class nnUNetTrainerMTGTeacherMixtureRawLoss(nnUNetTrainerMTGTeacher):
    """The default form by the name the accuracy experiment trains and reports."""


class nnUNetTrainerMTGTeacherStandin(StandinStemForm, nnUNetTrainerMTGTeacher):
    pass


class nnUNetTrainerMTGTeacherFirstBlock(FirstBlockForm, nnUNetTrainerMTGTeacher):
    pass


class nnUNetTrainerMTGTeacherNoAlign(nnUNetTrainerMTGTeacher):
    """The ablation: the default form's network and substitution without the alignment loss (still logged), so a
    gain of the default teacher splits into architecture (this minus dropout) and alignment (the default minus this)."""

    lambda_align = 0.0


# <trainer>_smoke, _demo, _1epoch, _2epochs, _5epochs, _50epochs, _250epochs of each
add_schedule_variants(globals(), nnUNetTrainerMTGTeacher, nnUNetTrainerMTGTeacherBottleneck,
                      nnUNetTrainerMTGTeacherAllStages, nnUNetTrainerMTGTeacherMixture, nnUNetTrainerMTGTeacherGaussian,
                      nnUNetTrainerMTGTeacherMixtureRawLoss, nnUNetTrainerMTGTeacherStandin,
                      nnUNetTrainerMTGTeacherFirstBlock, nnUNetTrainerMTGTeacherNoAlign)
