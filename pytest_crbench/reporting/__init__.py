"""Presenting results: the terminal summary and the HTML/Markdown report."""

__all__ = []
