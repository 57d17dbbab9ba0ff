"""Running detectors over datasets: settings, evaluation, analyses, floors, results
records and the run state that computes each piece once."""

__all__ = []
