"""Every chapter's expensive sweep, registered by name, cached, runnable headless.

A chapter's sweep lives in a module ``vqlib/sweeps/chNN_<topic>.py`` that builds
:class:`Sweep` objects and passes them to :func:`register`. The chapter calls
``sweeps.get("ch07-penalty").run()``; ``python -m vqlib`` runs the same sweep
from the command line; both read and fill the result cache (:mod:`vqlib.sweeps.cache`).

A sweep is a grid of independent jobs: each key in ``grid`` names a configuration entry
that holds a list, and one job takes one value of each. A sweep declares its data
(``data``: which datasets and splits a job reads, under which argument names); the runner
loads each of them once and calls ``compute(**arrays, **job)``, which trains and measures
one job and returns its tidy rows. The cache key of a job is built from its configuration
and from the arrays it reads, nothing else. Jobs are cached one by one, so an
interrupted sweep resumes where it stopped, and they can run in parallel
(``executor="dask"``, see :mod:`vqlib.sweeps.jobs`). A job's rows follow the sweep's schema
(:meth:`Sweep.check_rows`: finite numbers only), checked when they are computed and again
whenever they are read back from the cache.

Before any job is computed, every job's settings are checked (:meth:`Sweep.validate`: the
sweep's ``check``, with the rules of this module such as :func:`counts` and :func:`seeds`), so
a bad value anywhere in a list setting is refused before the first job is computed and
cached; so is a bad ``VQLIB_DEVICE``. Every job is computed with one torch thread
(:func:`vqlib.sweeps.jobs.one_torch_thread`), so a sweep's numbers are the same whatever the
caller's thread count.
"""
from __future__ import annotations

import importlib
import itertools
import json
import math
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .._checks import check_seed, choice, fits_in_memory, nonnegative_float, positive_float, positive_int, unit_float
from ..data import load_dataset
from ..device import default_device
from ..models.vqvae import latent_grids
from .cache import cache_dir, cached, code_fingerprint, is_cached, lookup, rows_problem
from .jobs import EXECUTORS, map_jobs, one_torch_thread
from .profile import PROFILES, current_profile

__all__ = ["Sweep", "all_sweeps", "get", "register", "check_settings", "count", "counts", "seed", "seeds",
           "positive", "nonnegative", "open_unit", "one_of", "each", "optional", "codebook", "at_most", "half_of",
           "few_subsets", "latent_grid"]

_REGISTRY: dict[str, "Sweep"] = {}


@dataclass(frozen=True)
class Sweep:
    """One chapter's sweep: its configuration per profile and how to compute one job (every chapter).

    A sweep is a grid of independent jobs: each key in ``grid`` names a configuration entry
    that holds a list, and one job takes one value of each. Each job is cached on its own
    (:mod:`vqlib.sweeps.cache`), keyed by its configuration and the arrays it reads.

    Parameters
    ----------
    name : str
        Registry name, ``"chNN-<what>"`` (e.g. ``"ch07-penalty"``).
    chapter : str
        The chapter file it serves, e.g. ``"07_generation"``.
    doc : str
        One line saying what it measures (shown by ``python -m vqlib list``).
    quick, full : mapping
        The configuration of each profile. Every entry is passed to ``compute`` as a keyword,
        except ``dataset`` (see ``data``).
    compute : callable
        ``compute(**arrays, **job) -> list[dict]``, the rows of one job; each array is a
        dataset's images as a float tensor (N, C, H, W) in [0, 1].
    grid : tuple of str, default ()
        Configuration keys whose list values are swept, one job per combination.
    columns : tuple of str, default ()
        Columns every row must hold, beyond the seeds (part of :meth:`check_rows`).
    data : callable, optional
        ``data(job) -> {argument: (dataset, split)}``, the data one job reads (see
        :meth:`inputs`); without it a job reads ``x``, the ``"train"`` split of the
        configuration's ``dataset`` (default ``"digits"``).
    check : callable, optional
        ``check(job, arrays)`` raises ``ValueError`` naming a setting of one job that ``compute``
        would refuse or could not finish (``arrays`` as ``compute`` gets them); it must be cheap:
        :meth:`validate` calls it for every job before any is computed. Without it only the
        configuration's shape is checked (:meth:`config`).

    See also
    --------
    register, get, all_sweeps, vqlib.sweeps.cache.cached, vqlib.sweeps.jobs.map_jobs; every chapter.
    """

    name: str
    chapter: str
    doc: str
    quick: Mapping
    full: Mapping
    compute: Callable[..., list[dict]]
    grid: tuple[str, ...] = field(default=())
    columns: tuple[str, ...] = field(default=())
    data: Callable[[Mapping], Mapping[str, tuple[str, str]]] | None = None
    check: Callable[[Mapping, Mapping], None] | None = None

    def config(self, profile: str | None = None, **overrides) -> dict:
        """The configuration of ``profile``, with overrides (every chapter).

        Parameters
        ----------
        profile : str, optional
            ``"quick"`` or ``"full"`` (default: :func:`vqlib.sweeps.current_profile`).
        **overrides
            New values for settings the configuration has; a list setting stays a non-empty list.

        Returns
        -------
        dict
            The profile's configuration (``quick`` or ``full``) updated by ``overrides``.

        Raises
        ------
        ValueError
            When ``profile`` is not one of :data:`vqlib.sweeps.PROFILES` (or ``VQLIB_PROFILE`` is bad),
            an override names a setting the sweep does not have, an override empties a list
            setting, or a grid key does not hold a non-empty list.

        See also
        --------
        jobs, run, vqlib.sweeps.pick; every chapter.
        """
        profile = current_profile() if profile is None else profile
        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r} is not one of {PROFILES}")
        config = dict(self.quick if profile == "quick" else self.full)
        unknown = sorted(set(overrides) - set(config))
        if unknown:
            raise ValueError(f"sweep {self.name!r} has no setting(s) {unknown}; it has {sorted(config)}")
        for key, value in overrides.items():
            default = config[key]
            if isinstance(default, (list, tuple)) and default and isinstance(value, (list, tuple)) and not value:
                raise ValueError(f"sweep {self.name!r}: setting {key!r} must hold a non-empty list, got {value!r}")
        config.update(overrides)
        for key in self.grid:
            if not isinstance(config.get(key), (list, tuple)) or not config[key]:
                raise ValueError(f"sweep {self.name!r}: grid key {key!r} must hold a non-empty list, "
                                 f"got {config.get(key)!r}")
        return config

    def jobs(self, config: Mapping) -> list[dict]:
        """One configuration per combination of the grid keys' values, in grid order (every chapter).

        The combinations are those of ``itertools.product`` over the grid keys' lists (the last
        grid key varies fastest); without a grid the one job is the configuration itself.

        Parameters
        ----------
        config : mapping
            A configuration, e.g. of :meth:`config` (without ``dataset``).

        Returns
        -------
        list of dict
            The jobs: ``config`` with each grid key set to one of its values.

        See also
        --------
        config, inputs, run; every chapter.
        """
        if not self.grid:
            return [dict(config)]
        values = [config[key] for key in self.grid]
        return [dict(config, **dict(zip(self.grid, combo))) for combo in itertools.product(*values)]

    def check_rows(self, rows) -> str | None:
        """What is wrong with ``rows`` as one job's rows of this sweep (None: nothing) (every chapter).

        The schema: a non-empty list of JSON objects whose numbers are all finite (no NaN or
        infinity, at any depth), each naming its seeds (a column whose name holds "seed", the
        book's convention) and holding ``columns``.

        Parameters
        ----------
        rows : object
            The rows to check, as a job returns them or as the cache reads them back.

        Returns
        -------
        str or None
            A short description of the first problem found, or None.

        See also
        --------
        vqlib.sweeps.cache.rows_problem, vqlib.sweeps.cache.cached; every chapter.
        """

        problem = rows_problem(rows)
        if problem is None and not rows:
            problem = "it holds no rows"
        for i, row in enumerate(rows if problem is None else []):
            missing = [c for c in self.columns if c not in row]
            if missing:
                return f"its row {i} lacks the column(s) {missing}"
            if not any("seed" in key for key in row):
                return f"its row {i} names no seed"
        return problem

    def inputs(self, job: Mapping) -> dict[str, tuple[str, str]]:
        """The data one job reads: ``{compute's argument: (dataset, split)}`` (every chapter).

        The runner loads each (dataset, split) once, and the job's cache key holds the
        fingerprints of exactly these arrays.

        Parameters
        ----------
        job : mapping
            One configuration of :meth:`jobs`, with ``dataset`` when the configuration has one.

        Returns
        -------
        dict of str to (str, str)
            ``data(job)``, or ``{"x": (dataset, "train")}`` without ``data`` (default dataset
            ``"digits"``).

        See also
        --------
        jobs, run, vqlib.load_dataset, vqlib.sweeps.cache.data_fingerprint; every chapter.
        """
        if self.data is None:
            return {"x": (job.get("dataset", "digits"), "train")}
        return dict(self.data(job))

    def _plan(self, profile, overrides) -> tuple[list[dict], list[dict], dict]:
        """(jobs as compute takes them, their cache configurations, the arrays they read by job index)."""

        config = self.config(profile, **overrides)
        dataset = config.pop("dataset", None)
        jobs = self.jobs(config)
        keys = [dict(job, dataset=dataset) if dataset is not None else dict(job) for job in jobs]
        loaded: dict = {}
        arrays = []
        for key in keys:
            wanted = self.inputs(key)
            for pair in wanted.values():
                if pair not in loaded:  # every (dataset, split) is read once, whatever the number of jobs
                    loaded[pair] = load_dataset(pair[0], split=pair[1])
            arrays.append({arg: loaded[pair] for arg, pair in wanted.items()})
        return jobs, keys, arrays

    def label(self, job: Mapping) -> str:
        """A job named by its grid values, e.g. ``"L=4, K=16"`` (``""`` without a grid) (every chapter)."""
        return ", ".join(f"{key}={json.dumps(job.get(key), separators=(',', ':'))}" for key in self.grid)

    def _job_name(self, i: int, jobs: list) -> str:
        """How messages name job ``i``: ``"job 2 of 6 (L=4, K=16)"``, or ``"its one job"``."""
        label = self.label(jobs[i])
        if len(jobs) == 1:
            return f"its one job ({label})" if label else "its one job"
        return f"job {i + 1} of {len(jobs)}" + (f" ({label})" if label else "")

    def _check_jobs(self, jobs, arrays) -> None:
        """``check`` on every job, before any is computed; a refusal names the sweep and the job."""
        try:
            default_device()  # a bad VQLIB_DEVICE is refused by every sweep, before it computes
        except ValueError as err:
            raise ValueError(f"sweep {self.name!r}: {err}") from None
        if self.check is None:
            return
        for i, (job, data) in enumerate(zip(jobs, arrays)):
            try:
                self.check(job, data)
            except ValueError as err:
                where = "" if len(jobs) == 1 else f", {self._job_name(i, jobs)}"
                raise ValueError(f"sweep {self.name!r}{where}: {err}") from None

    def validate(self, profile: str | None = None, **overrides) -> int:
        """Check every job of this configuration, computing nothing; the number of jobs (every chapter).

        :meth:`run` does the same before it computes its first job, and ``python -m vqlib run``
        before it computes anything: a bad value anywhere in a list setting (``n=[8, 0]``) is
        refused before the good ones are computed and cached. The data the jobs read are loaded
        (some checks depend on their size, e.g. n ≤ half the images).

        Parameters
        ----------
        profile : str, optional
            ``"quick"`` or ``"full"`` (default: :func:`vqlib.sweeps.current_profile`).
        **overrides
            As in :meth:`config`.

        Returns
        -------
        int
            The number of jobs.

        Raises
        ------
        ValueError
            As :meth:`config`; when ``VQLIB_DEVICE`` is bad (:func:`vqlib.default_device`); or when
            the sweep's ``check`` refuses a job, naming the sweep, the job and the setting.

        See also
        --------
        config, run; every chapter.
        """
        jobs, _, arrays = self._plan(profile, overrides)
        self._check_jobs(jobs, arrays)
        return len(jobs)

    def count_cached(self, profile: str | None = None, *, root=None, **overrides) -> tuple[int, int]:
        """(jobs with a healthy cache entry in ``root``, all jobs) of this configuration; reads only (every chapter).

        Used by ``python -m vqlib`` to say what a rerun will resume from. With a cache folder the
        job's data are loaded (they are part of each key); nothing is computed, moved or warned about.

        Parameters
        ----------
        profile : str, optional
            ``"quick"`` or ``"full"`` (default: :func:`vqlib.sweeps.current_profile`).
        root : str or path, optional
            The cache folder (default, and for None: ``VQLIB_CACHE``,
            :func:`vqlib.sweeps.cache.cache_dir`); with ``VQLIB_CACHE=off`` no job counts as cached.
        **overrides
            As in :meth:`config`.

        Returns
        -------
        tuple of (int, int)
            The number of cached jobs and the number of jobs.

        Raises
        ------
        ValueError
            As :meth:`config`.

        See also
        --------
        run, vqlib.sweeps.cache.is_cached; every chapter.
        """

        root = cache_dir() if root is None else root
        if root is None:
            return 0, len(self.jobs({k: v for k, v in self.config(profile, **overrides).items() if k != "dataset"}))
        jobs, keys, arrays = self._plan(profile, overrides)
        done = sum(is_cached(self.name, key, data=data, root=root, validate=self.check_rows)
                   for key, data in zip(keys, arrays))
        return done, len(jobs)

    def run(self, profile: str | None = None, *, cache: bool = True, refresh: bool = False,
            executor: str = "serial", workers: int = 2, progress: bool = False, **overrides) -> list[dict]:
        """All rows of the sweep: each job from the cache when present, else computed (every chapter).

        ``executor="serial"`` computes the missing jobs here, one after another;
        ``"dask"`` sends them to a local Dask cluster of ``workers`` processes (or to the
        scheduler named by ``VQLIB_DASK_SCHEDULER``). Cached jobs are read here and never
        sent; the rows are the same, in the same order, whichever executor ran them.

        Parameters
        ----------
        profile : str, optional
            ``"quick"`` or ``"full"`` (default: :func:`vqlib.sweeps.current_profile`).
        cache : bool, default True
            Read and fill the cache folder of ``VQLIB_CACHE``; False computes every job uncached.
        refresh : bool, default False
            Recompute every job and overwrite its entry.
        executor : str, default "serial"
            ``"serial"`` or ``"dask"`` (:func:`vqlib.sweeps.jobs.map_jobs`).
        workers : int, default 2
            Processes of the local Dask cluster, ≥ 1.
        progress : bool, default False
            Show a tqdm progress bar over the jobs computed serially.
        **overrides
            Settings that replace the profile's (see :meth:`config`).

        Returns
        -------
        list of dict
            The rows of every job, job after job in the order of :meth:`jobs`, as JSON stores them.

        Raises
        ------
        ValueError
            When ``executor`` is not one of ``("serial", "dask")``, as :meth:`config` and
            :meth:`validate` (before any job is computed), when ``workers`` is not an integer ≥ 1
            (Dask), or when computed rows break the schema (:meth:`check_rows`: a NaN or an
            infinity included; they are not cached).

        Notes
        -----
        Each job is computed with one torch thread, the caller's setting restored after
        (:func:`vqlib.sweeps.jobs.one_torch_thread`): convolutions reduce in an order that depends
        on the number of threads, and a sweep's numbers (and its cache entries) must not depend
        on the machine that computed them.

        See also
        --------
        config, jobs, count_cached, vqlib.sweeps.cache.cached, vqlib.sweeps.jobs.map_jobs; every chapter.
        """

        if executor not in EXECUTORS:
            raise ValueError(f"executor={executor!r} is not one of {EXECUTORS}")

        jobs, keys, arrays = self._plan(profile, overrides)
        self._check_jobs(jobs, arrays)  # every job, before the first is computed
        # the folder is resolved here, so workers started elsewhere write where this reads
        # and under this process's code fingerprint
        root = cache_dir() if cache else None
        code = code_fingerprint()
        name, compute, check = self.name, self.compute, self.check_rows
        labels = [self._job_name(i, jobs) for i in range(len(jobs))]

        def one(i):
            def computed():
                with one_torch_thread():  # the same numbers at any thread count
                    return compute(**arrays[i], **jobs[i])

            return cached(name, keys[i], computed, data=arrays[i], refresh=refresh, root=root, code=code,
                          validate=check, job=labels[i])

        results: list = [None] * len(jobs)
        todo = list(range(len(jobs)))
        if root is not None and not refresh:  # warm jobs are read here, never sent to a worker
            for i in range(len(jobs)):
                results[i] = lookup(name, keys[i], data=arrays[i], root=root, code=code, validate=check)
            todo = [i for i in todo if results[i] is None]
        if executor == "serial":
            it = todo
            if progress and todo:
                from tqdm.auto import tqdm  # only when a progress bar is asked for

                it = tqdm(todo, desc=self.name)
            for i in it:
                results[i] = one(i)
        elif todo:

            for i, rows in zip(todo, map_jobs(one, todo, executor=executor, workers=workers)):
                results[i] = rows
        return [row for rows in results for row in rows]


# --------------------------------------------------------------------------- rules for a sweep's check
# Each rule is ``rule(value, name)``: it returns nothing and raises ValueError naming the setting
# (the shared checks of vqlib._checks). A sweep's ``check`` applies them with check_settings.

Rule = Callable[[object, str], None]


def check_settings(job: Mapping, **rules: Rule) -> None:
    """Apply ``rules[name](job[name], name)`` to every setting named (every chapter's sweep).

    Parameters
    ----------
    job : mapping
        One job's configuration.
    **rules
        A rule per setting name (:func:`count`, :func:`seeds`, …); a name the job lacks is skipped.

    Raises
    ------
    ValueError
        The first rule's refusal, naming the setting and its value.
    """
    for name, rule in rules.items():
        if name in job:
            rule(job[name], name)


def count(minimum: int = 1) -> Rule:
    """Rule: an integer ≥ ``minimum``."""
    def rule(value, name):
        positive_int(value, name, minimum=minimum)
    return rule


def at_most(limit: int, minimum: int = 1, why: str = "") -> Rule:
    """Rule: an integer in [``minimum``, ``limit``]."""
    def rule(value, name):
        if positive_int(value, name, minimum=minimum) > limit:
            raise ValueError(f"{name} must be at most {limit}{why}, got {value!r}")
    return rule


def seed(value, name) -> None:
    """Rule: a seed, an integer in [0, 2**63 − 1]."""
    check_seed(value, name)


def positive(value, name) -> None:
    """Rule: a finite number > 0."""
    positive_float(value, name)


def nonnegative(value, name) -> None:
    """Rule: a finite number ≥ 0."""
    nonnegative_float(value, name)


def open_unit(value, name) -> None:
    """Rule: a number in (0, 1) (a confidence, a δ)."""
    unit_float(value, name, open_left=True, open_right=True)


def one_of(*options) -> Rule:
    """Rule: one of ``options``."""
    def rule(value, name):
        choice(value, name, options)
    return rule


def optional(inner: Rule) -> Rule:
    """Rule: None, or what ``inner`` accepts."""
    def rule(value, name):
        if value is not None:
            inner(value, name)
    return rule


def each(inner: Rule, *, distinct: bool = False, length: int | None = None) -> Rule:
    """Rule: a non-empty list whose every entry ``inner`` accepts (of ``length`` entries, when given)."""
    def rule(value, name):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list, got {value!r}")
        if length is not None and len(value) != length:
            raise ValueError(f"{name} must hold {length} entries, got {value!r}")
        for i, entry in enumerate(value):
            inner(entry, f"{name}[{i}]")
        if distinct and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            raise ValueError(f"{name} must hold distinct entries, got {value!r}")
    return rule


def seeds(value, name) -> None:
    """Rule: a non-empty list of distinct seeds."""
    each(seed, distinct=True)(value, name)


def counts(value, name) -> None:
    """Rule: a non-empty list of integers ≥ 1."""
    each(count())(value, name)


def codebook(code_dim: int = 8) -> Rule:
    """Rule: a number of codes K ≥ 1 whose codebook (K × ``code_dim`` floats) fits in memory."""
    def rule(value, name):
        K = positive_int(value, name)
        fits_in_memory(K * code_dim * 4, f"{name}={K!r}: a codebook of {K} codes")
    return rule


def half_of(images, name: str = "the data") -> Rule:
    """Rule: n ≥ 1 with 2n ≤ the number of ``images`` (a supersample of n pairs)."""
    return at_most(len(images) // 2, why=f" (half the {len(images)} images of {name})")


def latent_grid(images, architecture: str = "conv") -> Rule:
    """Rule: L ≥ 1, and for ``architecture="conv"`` one of the latent grids of ``images``' shape."""
    def rule(value, name):
        L = positive_int(value, name)
        if architecture == "conv":
            grids = latent_grids(tuple(images.shape[1:]))
            if L not in grids:
                valid = ", ".join(f"{g} ({h} × {w})" for g, (h, w) in grids.items())
                raise ValueError(f"{name}={L!r} is not a latent grid of architecture='conv' on inputs of shape "
                                 f"{tuple(images.shape[1:])}: valid L are {valid}")
    return rule


def few_subsets(limit: int) -> Rule:
    """Rule: n ≥ 1 with C(2n, n) ≤ ``limit`` (an exact enumeration of every training set)."""
    def rule(value, name):
        n = positive_int(value, name)
        if n > 64 or math.comb(2 * n, n) > limit:
            raise ValueError(f"{name}={n!r} is too large to enumerate its C(2n, n) training sets (at most {limit:,})")
    return rule


def register(sweep: Sweep) -> Sweep:
    """Add ``sweep`` to the registry (every chapter).

    Parameters
    ----------
    sweep : Sweep
        The sweep; registering the same object again does nothing.

    Returns
    -------
    Sweep
        ``sweep`` itself.

    Raises
    ------
    ValueError
        When another sweep of the same name is already registered.

    See also
    --------
    get, all_sweeps, Sweep; every chapter.
    """
    if sweep.name in _REGISTRY and _REGISTRY[sweep.name] is not sweep:
        raise ValueError(f"a sweep named {sweep.name!r} is already registered")
    _REGISTRY[sweep.name] = sweep
    return sweep


def _load_all() -> None:
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if re.fullmatch(r"ch\d\d_\w+", info.name):
            importlib.import_module(f"{__package__}.{info.name}")


def all_sweeps() -> dict[str, Sweep]:
    """Every registered sweep by name, after importing every ``chNN_*`` module (every chapter).

    Returns
    -------
    dict of str to Sweep
        The registry, sorted by name.

    See also
    --------
    get, register; every chapter.
    """
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Sweep:
    """The sweep called ``name`` (every chapter).

    Parameters
    ----------
    name : str
        A registered name such as ``"ch07-penalty"``.

    Returns
    -------
    Sweep
        The sweep.

    Raises
    ------
    ValueError
        When no sweep has that name; the message lists the known names.

    See also
    --------
    all_sweeps, register, Sweep.run; every chapter.
    """
    sweeps = all_sweeps()
    if name not in sweeps:
        raise ValueError(f"no sweep named {name!r}; known sweeps: {', '.join(sweeps) or 'none'}")
    return sweeps[name]
