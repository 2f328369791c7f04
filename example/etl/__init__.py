"""The example's ETL app: Palmer Penguins loaded by a dagflow workflow."""
