"""Read-mostly admin pages for what the ETL workflow loads."""

from django.contrib import admin

from etl.models import ImportBatch, IslandCount, Penguin, SearchTerm, SpeciesStats


@admin.register(Penguin)
class PenguinAdmin(admin.ModelAdmin):
    list_display = (
        "sample_id", "species", "island", "sex", "year", "bill_length_mm",
        "flipper_length_mm", "body_mass_g",
    )  # fmt: skip
    list_filter = ("species", "island", "sex", "year")
    search_fields = ("sample_id",)

    def get_search_results(self, request, queryset, search_term):
        """Search through the SearchTerm index that ``etl.build_index`` builds."""
        terms = search_term.lower().split()
        if not terms:
            return queryset, False
        for term in terms:
            queryset = queryset.filter(terms__term=term)
        return queryset.distinct(), True


@admin.register(SpeciesStats)
class SpeciesStatsAdmin(admin.ModelAdmin):
    list_display = (
        "species", "count", "female", "male", "mean_body_mass_g",
        "mean_flipper_length_mm", "run_id",
    )  # fmt: skip


@admin.register(IslandCount)
class IslandCountAdmin(admin.ModelAdmin):
    list_display = ("island", "species", "count")
    list_filter = ("island",)


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = (
        "run_id", "dataset", "rows_read", "rows_valid", "rows_rejected",
        "rows_skipped", "updated_at",
    )  # fmt: skip
    readonly_fields = [f.name for f in ImportBatch._meta.fields]


@admin.register(SearchTerm)
class SearchTermAdmin(admin.ModelAdmin):
    list_display = ("term", "penguin")
    search_fields = ("term",)
    list_select_related = ("penguin",)
