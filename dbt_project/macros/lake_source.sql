{#-
  Reads a lake table declared in models/staging/_sources.yml.

  On DuckDB the source renders as read_parquet(...) through its external_location.
  A table marked `meta: {optional: true}` that has no Parquet file yet (e.g.
  model_runs before the first training run) renders as an empty relation with
  the declared column types instead of failing; a required table fails loudly.
-#}
{% macro lake_source(table_name) -%}
    {%- set relation = source('lake', table_name) -%}
    {%- if execute and target.type == 'duckdb' -%}
        {%- set node = graph.sources['source.encore.lake.' ~ table_name] -%}
        {%- if node.meta.get('optional', false) -%}
            {%- set pattern = (env_var('ENCORE_LAKE') ~ '/' ~ table_name ~ '/dt=*/*.parquet') | replace("'", "''") -%}
            {%- set found = run_query("select count(*) from glob('" ~ pattern ~ "')").columns[0].values()[0] -%}
            {%- if found == 0 -%}
                {{ return(empty_relation_from_columns(node.columns)) }}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{% macro empty_relation_from_columns(columns) -%}
(
    select
    {%- for name, column in columns.items() %}
        cast(null as {{ column.data_type }}) as {{ adapter.quote(name) }}{{ "," if not loop.last }}
    {%- endfor %}
    where false
)
{%- endmacro %}
