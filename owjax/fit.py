"""``python -m owjax.fit +experiment=NAME``: fit a model with one of the fitting tasks.

The loop and everything it owns live in :mod:`owjax.fitting.loop`; this module is only the Hydra
entry point (primary config ``owjax/conf/fit.yaml``, tasks in ``owjax/conf/experiment/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from owjax.fitting.loop import check_experiment_argument, run_fit

__all__ = ["main", "run_fit", "check_experiment_argument"]


@hydra.main(config_path="conf", config_name="fit", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from owjax.core.checkpoint import CheckpointMismatchError
    from owjax.fitting.params import ParameterSpecError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # precision is chosen once, here at the entry point, from the run's config (library code never
    # toggles it): float64 runs need JAX's 64-bit mode, float32 runs do not use it
    from owjax.core.precision import set_precision

    set_precision(str(cfg.get("dtype", "float64")))
    try:
        m = run_fit(cfg, run_dir)
    except (ParameterSpecError, CheckpointMismatchError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    keys = [k for k in ("max_rel_error_identifiable", "non_identifiable", "initial_period_s", "period_s",
                        "all_in_bounds", "initial_loss", "test_r", "test_sign_agreement", "nt_consistency",
                        "train_r", "baseline_c302_test_r", "baseline_c302_test_sign_agreement",
                        "shuffled_test_r", "corr_matrix_mse", "n_train_neurons", "n_test_neurons",
                        "n_pairs_used") if k in m]
    extra = "".join(f"\n  {k}: {m[k]}" for k in keys)
    wall = m["wall_time_s"]["total"] if isinstance(m["wall_time_s"], dict) else m["wall_time_s"]
    print(f"\nowjax.fit {m['experiment']}: final loss {m['final_loss']:.6g} after {m['n_steps']} steps, "
          f"{wall:.1f} s{extra}\n  outputs in {run_dir}")



if __name__ == "__main__":
    _msg = check_experiment_argument(sys.argv[1:])
    if _msg:
        print(f"error: {_msg}", file=sys.stderr)
        sys.exit(2)
    main()
