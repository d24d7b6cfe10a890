"""The commands that build, check and measure the book; not part of the library the chapters import.

Run them from the repository root as ``python -m tools.<name>``: ``build`` (the book, what
``make book`` runs), ``browsercheck`` (the rendered pages in Chromium, driven by selenium),
``benchmark`` (rVGG throughput on a GPU), ``bench_cams`` (``helpers.cams`` against
pytorch-grad-cam, speed and agreement), ``gpu_session`` (one prepared run on a lent GPU),
``check_notebooks`` (the notebooks' hygiene), ``timed`` (a step of ``make test``, timed).
They import :mod:`helpers`; :mod:`helpers` never imports them (``tests/test_layers.py``).
"""
