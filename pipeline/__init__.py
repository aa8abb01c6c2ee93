"""Back-catalogue digitization pipeline: scans of TTHC results -> verified PDF/A archive.

Every stage is a plain function over plain data so that the CLI, the Airflow DAGs and the tests
call the same code. Nothing in this package imports Airflow.
"""

__version__ = "0.1.0"
