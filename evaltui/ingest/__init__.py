"""Import and export through DuckDB's readers and COPY."""

from evaltui.ingest.cases import ImportReport, import_cases, parse_map
from evaltui.ingest.export import export_labels
from evaltui.ingest.labels import LabelImportReport, import_labels, parse_values

__all__ = [
    "ImportReport",
    "LabelImportReport",
    "export_labels",
    "import_cases",
    "import_labels",
    "parse_map",
    "parse_values",
]
