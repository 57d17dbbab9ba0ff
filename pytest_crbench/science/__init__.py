"""The study's science as plain numpy/astropy code, usable without pytest: the data model
(exposures, groups, references), reference building, star regions, pixel scores,
photometry, cleaning, cosmic-ray density and stability over time."""

__all__ = []
