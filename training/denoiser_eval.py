"""The held-out denoising table now lives in :mod:`restorekit.evaluation`; this module only
re-exports it for ``train_denoiser.py`` and ``convert_scico_dncnn.py``, which import it from
here (switch them to ``restorekit.evaluation`` and delete this file)."""

from restorekit.evaluation import heldout_table, markdown_table

__all__ = ["heldout_table", "markdown_table"]
