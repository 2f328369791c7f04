"""Print the penguins whose index terms match every word given (read-only)."""

from django.core.management.base import BaseCommand, CommandError

from etl.models import Penguin


class Command(BaseCommand):
    help = (
        "Search the penguin index built by the etl.build_index step, e.g. "
        "`penguin_search gentoo biscoe female`. Read-only, so it is allowed in "
        "DAGFLOW['ALLOWED_COMMANDS'] for the management_command step."
    )

    def add_arguments(self, parser):
        parser.add_argument("terms", nargs="+", help="words that must all match")
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, terms, limit, **options):
        queryset = Penguin.objects.all()
        for term in terms:
            queryset = queryset.filter(terms__term=term.lower())
        if not Penguin.objects.exists():
            raise CommandError("No penguins loaded yet: run the penguins-etl workflow.")
        queryset = queryset.distinct()
        total = queryset.count()
        for penguin in queryset[:limit]:
            self.stdout.write(
                f"{penguin.sample_id:14} {penguin.species:10} {penguin.island:10} "
                f"{penguin.sex:6} {penguin.year} {penguin.body_mass_g:g} g"
            )
        self.stdout.write(f"{total} penguin(s) match {' '.join(terms)!r}.")
