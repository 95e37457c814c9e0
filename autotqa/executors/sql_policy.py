"""Which functions a model-written query may call: decided by what a function is, not by a deny list.

A function passes when sqlglot knows it as a typed expression (``exp.Sum``, ``exp.DateDiff`` ...: the
portable scalar, aggregate and window functions) or when DuckDB names it and it is on the curated
list below; everything else is refused. A name list alone let a query through that asked DuckDB to
run a function named in a string; with an allow-list, new or exotic DuckDB functions (``query``,
``query_table``, ``getvariable``, ``current_setting``, the ``duckdb_*`` and ``pragma_*`` functions,
``json_execute_serialized_sql``, ``sql_auto_complete`` ...) are refused without being named.

Table functions (a function in FROM, JOIN or LATERAL) are held to a shorter list: functions that
only compute values. A few typed sqlglot classes stand for file or environment access and are
refused although typed.

>>> import sqlglot
>>> check_function(sqlglot.parse_one("SELECT upper(name) FROM t").find(exp.Func))
>>> try:
...     check_function(sqlglot.parse_one("SELECT getvariable('x')").find(exp.Func))
... except SQLError as exc:
...     print(exc.kind, exc.message)
forbidden_function function getvariable() is not allowed: queries may only read the loaded tables
"""

from __future__ import annotations

from sqlglot import exp

from ..errors import SQLError

#: Table functions that only compute values; every other function in FROM/JOIN/LATERAL is refused.
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

#: Typed sqlglot classes that read files or reveal the environment, sessions or sequences.
_DENIED_CLASSES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name) for name in (
        "ReadCSV", "ReadParquet", "ToFile", "Secret", "NextValueFor", "CurrentUser", "CurrentUserId",
        "SessionUser", "CurrentOrganizationUser", "CurrentCatalog", "CurrentDatabase", "CurrentSchema",
        "CurrentSchemas",
    ) if hasattr(exp, name)
)

#: Name patterns refused even if a future sqlglot types them: file readers and system functions.
_DENIED_PREFIXES = ("read_", "parquet_", "duckdb_", "pragma_", "__", "st_read", "sqlite_", "postgres_",
                    "mysql_", "iceberg_", "delta_", "json_execute", "query", "current_setting", "getenv",
                    "getvariable", "which_secret", "sql_")

#: DuckDB functions sqlglot does not type, known to compute a value from their arguments alone.
#: Deliberately absent: anything that takes SQL, a function, a table or a setting by name as a
#: string (``aggregate``/``list_aggregate``, ``invoke``, ``histogram`` as a table macro, ...),
#: sequences, sleeps, logging, and functions that describe the session or the catalog.
DUCKDB_SAFE_FUNCTIONS = frozenset("""
    add subtract multiply divide fdiv fmod even gamma lgamma gcd lcm greatest_common_divisor
    least_common_multiple nextafter isfinite signbit round_even roundbankers binom
    arbitrary arg_max_null arg_min_null arg_max_nulls_last arg_min_nulls_last bitstring_agg entropy
    favg fsum kahan_sum sumkahan kurtosis_pop mad mean product reservoir_quantile sem geomean
    geometric_mean wavg weighted_avg
    age century decade era millennium isoyear yearweek weekday microsecond millisecond nanosecond
    julian date_part datepart date_sub datesub days_in_month epoch_ns epoch_us make_timestamp_ms
    make_timestamp_ns make_timestamptz timezone timezone_hour timezone_minute try_strptime now
    get_current_timestamp transaction_timestamp current_localtime normalized_interval to_centuries
    to_decades to_hours to_microseconds to_millennia to_milliseconds to_minutes to_months
    to_quarters to_seconds to_weeks to_years
    octet_length strlen ord prefix suffix left_grapheme right_grapheme length_grapheme
    substring_grapheme strip_accents nfc_normalize url_encode url_decode regexp_escape
    regexp_split_to_array regexp_split_to_table base64 bin unbin to_base hash md5_number
    md5_number_lower md5_number_upper bar damerau_levenshtein hamming mismatches jaccard
    jaro_similarity printf format_bytes formatreadablesize formatreadabledecimalsize
    parse_formatted_bytes like_escape not_like_escape ilike_escape not_ilike_escape error
    cardinality element_at flatten list_pack array_value list_apply array_apply list_transform
    array_transform list_filter array_filter list_select array_select list_where array_where
    list_zip array_zip list_extract array_extract list_element list_grade_up array_grade_up
    grade_up list_has_any array_has_any list_has_all list_indexof array_indexof list_position
    list_resize array_resize list_reduce array_reduce list_unique array_unique list_cat
    list_intersect list_slice list_reverse list_sum list_avg list_count list_first list_last
    list_median list_mode list_product list_stddev_pop list_stddev_samp list_var_pop list_var_samp
    list_bool_and list_bool_or list_bit_and list_bit_or list_bit_xor list_string_agg list_histogram
    list_any_value list_approx_count_distinct list_entropy list_kurtosis list_kurtosis_pop list_mad
    list_sem list_skewness list_max list_min array_push_back array_push_front array_pop_back
    array_pop_front generate_subscripts list_dot_product list_inner_product list_cosine_similarity
    array_cosine_similarity array_cosine_distance array_distance array_dot_product
    array_inner_product array_cross_product array_to_string array_to_json
    map_concat map_contains map_entries map_extract map_extract_value map_values
    map_contains_entry map_contains_value
    struct_concat struct_contains struct_extract_at struct_has struct_indexof struct_insert
    struct_keys struct_position struct_update struct_values row
    json_array_length json_contains json_exists json_merge_patch json_pretty json_quote
    json_structure json_transform json_transform_strict json_valid json_value to_json row_to_json
    from_json_strict json_group_array json_group_object json_group_structure
    enum_code enum_first enum_last enum_range enum_range_boundary union_extract union_tag
    union_value uuidv4 uuidv7 uuid_extract_timestamp uuid_extract_version equi_width_bins
    columns
""".split())


def function_name(node: exp.Func) -> str:
    """The lower-case name a function node stands for.

    >>> import sqlglot
    >>> function_name(sqlglot.parse_one("SELECT getenv('HOME')").find(exp.Func))
    'getenv'
    """
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    return node.sql_name().lower()


def in_table_position(node: exp.Func) -> bool:
    """Whether ``node`` is called as a table function: in FROM, JOIN or LATERAL (maybe qualified)."""
    if isinstance(node, exp.Unnest | exp.Explode):
        return True
    parent = node.parent
    while isinstance(parent, exp.Dot):  # system.main.f(): the call sits under the qualifiers
        parent = parent.parent
    return isinstance(parent, exp.Table | exp.Lateral | exp.From | exp.Join)


def _refuse(name: str, table: bool, hint: str) -> SQLError:
    what = "table function" if table else "function"
    why = "only the loaded tables can be queried" if table else "queries may only read the loaded tables"
    return SQLError(f"{what} {name}() is not allowed: {why}", kind="forbidden_function", hint=hint)


def check_function(node: exp.Func, tables_hint: str = "") -> None:
    """Raise SQLError (``forbidden_function``) unless ``node`` may run."""
    name = function_name(node)
    if in_table_position(node):
        if name not in ALLOWED_TABLE_FUNCTIONS and not isinstance(node, exp.Unnest | exp.Explode):
            raise _refuse(name, True, tables_hint or "query the loaded tables by name")
        return
    known = not isinstance(node, exp.Anonymous) or name in DUCKDB_SAFE_FUNCTIONS
    if not known or isinstance(node, _DENIED_CLASSES) or name.startswith(_DENIED_PREFIXES):
        raise _refuse(name, False, "use standard SQL functions over the catalog tables; files, settings, "
                                   "the environment and SQL given as text are out of reach")
