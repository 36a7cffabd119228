"""Rendering: sandboxed Jinja2 templates into the HTML and text parts of one email."""

from drip.render.renderer import RenderedEmail, Renderer, TemplateContact

__all__ = ["RenderedEmail", "Renderer", "TemplateContact"]
