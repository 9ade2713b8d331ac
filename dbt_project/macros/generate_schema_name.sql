{#-
  Custom schemas are used as-is (staging, intermediate) instead of dbt's default
  <target_schema>_<custom>, so analysts find marts in the target schema (main)
  and the building blocks in schemas named after their layer.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
