"""Reporting: the phase plan, progress figures, the quarterly report, the dashboard."""
