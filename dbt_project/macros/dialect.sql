{#-
  The SQL that differs between the warehouse targets (DuckDB embedded, Postgres deployed),
  one macro per difference, picked by adapter.dispatch. Everything else in the models is
  written once in SQL both run (casts to double precision, generate_subscripts, array[...],
  row_number() subqueries instead of DuckDB's qualify).
-#}

{#- Number of elements of a list / array column (0 for an empty one, on both targets). -#}
{% macro list_length(column) -%}
    {{ return(adapter.dispatch('list_length', 'encore')(column)) }}
{%- endmacro %}

{% macro default__list_length(column) -%}
    cardinality({{ column }})
{%- endmacro %}

{% macro duckdb__list_length(column) -%}
    len({{ column }})
{%- endmacro %}

{#- 'mean ± std' with four decimals (std null -> 0), e.g. '0.3000 ± 0.1000'. -#}
{% macro format_mean_pm_std(mean, std) -%}
    {{ return(adapter.dispatch('format_mean_pm_std', 'encore')(mean, std)) }}
{%- endmacro %}

{% macro default__format_mean_pm_std(mean, std) -%}
    to_char({{ mean }}, 'FM999999990.0000') || ' ± ' || to_char(coalesce({{ std }}, 0), 'FM999999990.0000')
{%- endmacro %}

{% macro duckdb__format_mean_pm_std(mean, std) -%}
    printf('%.4f ± %.4f', {{ mean }}, coalesce({{ std }}, 0))
{%- endmacro %}
