from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Print a greeting (used by the management_command step tests)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **options):
        self.stdout.write(f"hello {options['name']}")
