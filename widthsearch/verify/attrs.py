"""The names a verification keeps its state under in Optuna studies, each defined once.

What a verification stores outlives the code that wrote it (a later ``verify`` resumes it, a
report reads it, a worker on another machine claims its runs), so these strings are part of
the storage format: change one and every stored verification reads differently.

- On the **search study**, :data:`VERIFY` holds one entry per recipe key (and ``KEY+params``
  when the controls match params): the verification's settings, the name of its
  verification study (:data:`VERIFICATION_STUDY`), the summary ``verify`` printed last
  (:data:`SUMMARY`, what reports read through
  :func:`widthsearch.verify.results.stored_verifications`) and the result rows older versions
  kept there (:data:`ROWS`).
- On the **verification study** (:mod:`widthsearch.verify.queue`): :data:`WIDTHSEARCH` (whose
  value :data:`MARK` says it is one), its :data:`SETTINGS`, its :data:`PRUNER`, and
  :data:`LATENCY`, the timings of the models as trained
  (:mod:`widthsearch.verify.latency`).
- On each of its **trials**, one run: what a worker needs to build and train it (:data:`RUN`
  to :data:`PROTECTED`), its result row (:data:`RESULT`) and where it came from or why it was
  not trained (:data:`WORKER`, :data:`IMPORTED`, :data:`SHARED_FROM`, :data:`SKIPPED`).
"""

from __future__ import annotations

# ------------------------------------------------------------------------- search study
VERIFY = "verify"
"""The search study's verifications, by recipe key."""
VERIFICATION_STUDY = "verification_study"
"""In an entry of :data:`VERIFY`: the name of the verification study that holds its runs."""
SUMMARY = "summary"
"""In an entry of :data:`VERIFY`: what ``verify`` printed last (:meth:`VerifyReport.summary`)."""
ROWS = "rows"
"""In an entry of :data:`VERIFY`: result rows older versions kept in the search study."""

# ------------------------------------------------------------------- verification study
WIDTHSEARCH = "widthsearch"
"""What kind of widthsearch study this is; a verification study's value is :data:`MARK`."""
MARK = "verify"
"""The value of :data:`WIDTHSEARCH` on a verification study."""
SETTINGS = "settings"
"""The verification's recipe key, model, data, input size and recipe."""
PRUNER = "pruner"
"""The pruner, resolved once when the study is made."""
LATENCY = "latency"
"""The latency of the models as trained, timed in one interleaved run: a dict of
:data:`LATENCY_DEVICE`, :data:`LATENCY_MS` and :data:`LATENCY_LOAD`."""
LATENCY_DEVICE = "device"
"""In :data:`LATENCY`: what the models were timed on, in words."""
LATENCY_MS = "ms"
"""In :data:`LATENCY`: median ms and spread, by widths key."""
LATENCY_LOAD = "others_busy"
"""In :data:`LATENCY`: CPU cores other processes kept busy meanwhile (None: not known)."""

# ------------------------------------------------------------------ a verification trial
RUN = "run"
"""The run's id, ``WIDTHS_KEY-sSEED`` (:func:`widthsearch.verify.queue.run_id`)."""
CANDIDATE = "candidate"
"""The candidate's label (``trial 7``, ``base``, ``uniform 0.9x``, ...)."""
KIND = "kind"
"""candidate, base, control or random."""
SEARCH_TRIAL = "search_trial"
"""The search trial the candidate is (None: not from a search)."""
WIDTHS_KEY = "widths_key"
WIDTHS = "widths"
SEARCH_PARAMS = "search_params"
"""Params at the search's input size."""
SEARCH_MACS = "search_macs"
"""MACs at the search's input size."""
LOG_SYNEXP = "log_synexp"
"""Log SynExp gain over the base."""
SEED = "seed"
"""The run's seed: a user attribute, and the trial's one parameter."""
RECIPE_KEY = "recipe_key"
PROTECTED = "protected"
"""Never pruned: the base, a control, or a candidate with their widths."""
RESULT = "result"
"""The result row (:data:`widthsearch.verify.results.CSV_FIELDS`), set before the trial ends."""
WORKER = "worker"
"""``host:pid`` of the worker that claimed the run."""
IMPORTED = "imported"
"""The run came from a results CSV or an older version's study attribute, not trained here."""
SHARED_FROM = "shared_from"
"""The verification whose finished run this one took over."""
SKIPPED = "skipped"
"""Why a claimed trial was ended without training (a duplicate, or not a run at all)."""
