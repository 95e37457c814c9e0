"""The data catalog: load tables into one DuckDB connection and describe them for the agents.

>>> from autotqa.catalog import Catalog
>>> Catalog.from_sources([]) # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
autotqa.errors.DataLoadError: no sources given
"""

from autotqa.catalog.catalog import Catalog, Source
from autotqa.catalog.models import ColumnInfo, ColumnSchema, ForeignKey, TableInfo, TableSchema
from autotqa.catalog.render import estimate_tokens
from autotqa.catalog.schema import SchemaInfo

__all__ = ["Catalog", "ColumnInfo", "ColumnSchema", "ForeignKey", "SchemaInfo", "Source", "TableInfo",
           "TableSchema", "estimate_tokens"]
