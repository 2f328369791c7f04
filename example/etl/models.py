"""The data the ETL workflow loads, and its staging and bookkeeping tables.

Staging lives in the database (not in files) so that steps of one run may
execute on different machines; rows are keyed by the workflow run's id.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportBatch(models.Model):
    """What one workflow run read, accepted and rejected (with the reasons)."""

    run_id = models.BigIntegerField(_("workflow run"), unique=True)
    dataset = models.CharField(_("dataset"), max_length=100)
    min_year = models.IntegerField(_("from year"), null=True, blank=True)
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    rows_valid = models.PositiveIntegerField(_("valid rows"), default=0)
    rows_rejected = models.PositiveIntegerField(_("rejected rows"), default=0)
    rows_skipped = models.PositiveIntegerField(
        _("skipped rows"),
        default=0,
        help_text=_("Valid, but older than the run's min_year."),
    )
    rejected = models.JSONField(
        _("rejected rows"),
        default=list,
        blank=True,
        help_text=_("Each rejected row: its line in the CSV, its sample id and why."),
    )
    summary = models.JSONField(_("summary"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-run_id"]
        verbose_name = _("import batch")
        verbose_name_plural = _("import batches")

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.rows_valid}/{self.rows_read} valid"


class StagedRow(models.Model):
    """One raw CSV row of a run, between extract and cleanup."""

    run_id = models.BigIntegerField(_("workflow run"), db_index=True)
    line = models.PositiveIntegerField(_("line"))
    data = models.JSONField(_("raw row"))
    valid = models.BooleanField(_("valid"), null=True)
    record = models.JSONField(_("normalised record"), null=True, blank=True)

    class Meta:
        ordering = ["run_id", "line"]
        constraints = [
            models.UniqueConstraint(
                fields=["run_id", "line"], name="etl_staged_row_line"
            )
        ]
        verbose_name = _("staged row")
        verbose_name_plural = _("staged rows")

    def __str__(self) -> str:
        return f"run {self.run_id} line {self.line}"


class Penguin(models.Model):
    """One observed adult penguin of the Palmer Station LTER study."""

    class Sex(models.TextChoices):
        FEMALE = "female", _("female")
        MALE = "male", _("male")

    sample_id = models.CharField(_("sample id"), max_length=40, unique=True)
    study = models.CharField(_("study"), max_length=20)
    sample_number = models.PositiveIntegerField(_("sample number"))
    species = models.CharField(_("species"), max_length=40, db_index=True)
    island = models.CharField(_("island"), max_length=40, db_index=True)
    region = models.CharField(_("region"), max_length=40, blank=True)
    individual_id = models.CharField(_("individual id"), max_length=20, blank=True)
    clutch_completion = models.BooleanField(_("clutch completed"))
    date_egg = models.DateField(_("first egg observed"))
    year = models.PositiveSmallIntegerField(_("year"), db_index=True)
    sex = models.CharField(_("sex"), max_length=6, choices=Sex.choices)
    bill_length_mm = models.FloatField(_("bill length (mm)"))
    bill_depth_mm = models.FloatField(_("bill depth (mm)"))
    flipper_length_mm = models.FloatField(_("flipper length (mm)"))
    body_mass_g = models.FloatField(_("body mass (g)"))
    body_mass_kg = models.FloatField(_("body mass (kg)"))
    delta_15n = models.FloatField(_("δ15N (‰)"), null=True, blank=True)
    delta_13c = models.FloatField(_("δ13C (‰)"), null=True, blank=True)
    comments = models.TextField(_("comments"), blank=True)
    loaded_by_run = models.BigIntegerField(_("loaded by run"), null=True, blank=True)

    class Meta:
        ordering = ["species", "sample_number"]
        verbose_name = _("penguin")
        verbose_name_plural = _("penguins")

    def __str__(self) -> str:
        return f"{self.species} {self.sample_number} ({self.island}, {self.year})"


class SpeciesStats(models.Model):
    """Per-species figures computed by the ``etl.species_stats`` step."""

    species = models.CharField(_("species"), max_length=40, unique=True)
    count = models.PositiveIntegerField(_("penguins"))
    female = models.PositiveIntegerField(_("female"))
    male = models.PositiveIntegerField(_("male"))
    mean_body_mass_g = models.FloatField(_("mean body mass (g)"), null=True)
    mean_flipper_length_mm = models.FloatField(_("mean flipper length (mm)"), null=True)
    measures = models.JSONField(
        _("measures"),
        default=dict,
        help_text=_("mean, sd, min and max of each measure."),
    )
    run_id = models.BigIntegerField(_("computed by run"))

    class Meta:
        ordering = ["species"]
        verbose_name = _("species statistics")
        verbose_name_plural = _("species statistics")

    def __str__(self) -> str:
        return f"{self.species}: {self.count}"


class IslandCount(models.Model):
    """How many penguins of a species were loaded for an island."""

    island = models.CharField(_("island"), max_length=40)
    species = models.CharField(_("species"), max_length=40)
    count = models.PositiveIntegerField(_("penguins"))

    class Meta:
        ordering = ["island", "species"]
        constraints = [
            models.UniqueConstraint(
                fields=["island", "species"], name="etl_island_species"
            )
        ]
        verbose_name = _("island count")
        verbose_name_plural = _("island counts")

    def __str__(self) -> str:
        return f"{self.island} / {self.species}: {self.count}"


class SearchTerm(models.Model):
    """The search index: one row per (term, penguin), rebuilt by ``etl.build_index``."""

    term = models.CharField(_("term"), max_length=100, db_index=True)
    penguin = models.ForeignKey(
        Penguin,
        on_delete=models.CASCADE,
        related_name="terms",
        verbose_name=_("penguin"),
    )

    class Meta:
        ordering = ["term", "penguin_id"]
        constraints = [
            models.UniqueConstraint(fields=["term", "penguin"], name="etl_term_penguin")
        ]
        verbose_name = _("search term")
        verbose_name_plural = _("search terms")

    def __str__(self) -> str:
        return self.term
