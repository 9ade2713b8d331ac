{#- The run date every mart is computed "as of", from the required var run_date. -#}
{% macro as_of_date() -%}
    {%- set raw = var('run_date', none) -%}
    {%- if raw is none -%}
        {{ exceptions.raise_compiler_error("var run_date is required, e.g. --vars '{run_date: 2026-10-30}'") }}
    {%- endif -%}
    {%- set text = raw | string -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
        {{ exceptions.raise_compiler_error("var run_date must be YYYY-MM-DD, got '" ~ text ~ "'") }}
    {%- endif -%}
    cast('{{ text }}' as date)
{%- endmacro %}
