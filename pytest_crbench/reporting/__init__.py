"""Presenting results: the terminal summary and the HTML/Markdown report."""
