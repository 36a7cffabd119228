"""Sequence files: YAML + Jinja2 templates in git, parsed and checked before anything is sent."""
