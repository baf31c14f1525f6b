"""What each registered sweep costs on the book's build machine, per profile (every chapter's
setup cell prints it, through :func:`vqlib.book.profile_note`; teaching.md quotes it).

Written by ``benchmarks/bench_profiles.py --write``: ``quick_s`` is the whole quick sweep computed
without the cache (measured); ``full_s`` the whole full sweep, measured (``full_basis`` =
"measured") or extrapolated linearly from two runs of a fraction of it (``full_basis`` says which
fraction). Seconds of wall clock on '2 CPU cores (x86_64), torch 2.13.0+cpu', one thread per process; each entry says when it
was measured (``measured_on``), ``MEASURED_ON`` is the newest.
GPU: not measured (no GPU was lent to the builds of this book).
"""

MACHINE = '2 CPU cores (x86_64), torch 2.13.0+cpu'
MEASURED_ON = '2026-12-08'

COSTS = {
    "ch01-grid": {
        "quick_s": 6.0,
        "full_s": 39.6,
        "full_basis": "extrapolated from runs with epochs 3 and 6 of 60 (5 s and 7 s)",
        "measured_on": "2026-12-01"
    },
    "ch01-latents": {
        "quick_s": 22.6,
        "full_s": 877.2,
        "full_basis": "extrapolated from runs with epochs 2 and 4 of 150 (11 s and 23 s)",
        "measured_on": "2026-12-01"
    },
    "ch01-model": {
        "quick_s": 2.3,
        "full_s": 8.3,
        "full_basis": "measured",
        "measured_on": "2026-12-01"
    },
    "ch02-coverage": {
        "quick_s": 64.4,
        "full_s": 706.3,
        "full_basis": "extrapolated from runs with 1/16 and 2/16 of every experiment count (38 s and 82 s)",
        "measured_on": "2026-12-08"
    },
    "ch02-kmeans": {
        "quick_s": 5.8,
        "full_s": 178.1,
        "full_basis": "extrapolated from runs with n_masks 64 and 256 of 512 (114 s and 142 s)",
        "measured_on": "2026-12-08"
    },
    "ch02-vqvae": {
        "quick_s": 2.3,
        "full_s": 1140.9,
        "full_basis": "extrapolated from runs with n_masks 4 and 8 of 256, n_supersamples 1 of 8 (3 s and 6 s)",
        "measured_on": "2026-12-08"
    },
    "ch03-memoriser": {
        "quick_s": 0.2,
        "full_s": 1.7,
        "full_basis": "extrapolated from runs with mask_seeds 4 and 8 of 32 (0 s and 1 s)",
        "measured_on": "2026-12-01"
    },
    "ch03-parts": {
        "quick_s": 5.0,
        "full_s": 127.7,
        "full_basis": "extrapolated from runs with mask_seeds 2 and 4 of 32 (13 s and 21 s)",
        "measured_on": "2026-12-01"
    },
    "ch04-main": {
        "quick_s": 7.5,
        "full_s": 58.4,
        "full_basis": "extrapolated from runs with n_masks 16 and 32 of 512 (3 s and 5 s)",
        "measured_on": "2026-12-08"
    },
    "ch04-settings": {
        "quick_s": 12.6,
        "full_s": 66.7,
        "full_basis": "extrapolated from runs with n_masks 4 and 8 of 16 (57 s and 60 s)",
        "measured_on": "2026-12-08"
    },
    "ch05-exact": {
        "quick_s": 0.5,
        "full_s": 3.5,
        "full_basis": "extrapolated from runs with supersample_seeds 1 and 2 of 20 (0 s and 0 s)",
        "measured_on": "2026-12-01"
    },
    "ch05-monte-carlo": {
        "quick_s": 1.5,
        "full_s": 23.8,
        "full_basis": "extrapolated from runs with mask_seeds 2 and 4 of 30 (4 s and 5 s)",
        "measured_on": "2026-12-01"
    },
    "ch06-learned": {
        "quick_s": 9.4,
        "full_s": 39.6,
        "full_basis": "measured",
        "measured_on": "2026-12-01"
    },
    "ch06-temperature": {
        "quick_s": 51.5,
        "full_s": 1749.4,
        "full_basis": "extrapolated from runs with n_masks 8 and 16 of 256 (167 s and 218 s)",
        "measured_on": "2026-12-08"
    },
    "ch07-penalty": {
        "quick_s": 10.5,
        "full_s": 118.9,
        "full_basis": "extrapolated from runs with epochs 3 and 6 of 60 (14 s and 20 s)",
        "measured_on": "2026-12-01"
    },
    "ch07-priors": {
        "quick_s": 6.4,
        "full_s": 75.2,
        "full_basis": "extrapolated from runs with epochs 3 and 6 of 60 (29 s and 31 s)",
        "measured_on": "2026-12-01"
    },
    "ch08-capacity": {
        "quick_s": 50.8,
        "full_s": 1019.6,
        "full_basis": "extrapolated from runs with epochs 5 and 10 of 300 (24 s and 41 s)",
        "measured_on": "2026-12-01"
    }
}
