"""Reports: run and sweep folders -> seed-aggregated tables, statistics and plots."""
from optlab.report.groups import (
                                  ALL,
                                  Metric,
                                  aggregate,
                                  check_keys,
                                  compare,
                                  differing_keys,
                                  epochs_to_target,
                                  group_curves,
                                  group_labels,
                                  grouping_keys,
                                  merge_duplicates,
                                  numeric_keys,
                                  pooled_keys,
                                  replicate_ids,
                                  resolve_metric,
                                  show_value,
)
from optlab.report.load import (
                                  STATUSES,
                                  Collection,
                                  Skipped,
                                  Sweep,
                                  chosen_statuses,
                                  load,
                                  load_run,
                                  load_sweep,
)
from optlab.report.stats import describe, range_text, t_quantile, t_sf, value_range, welch
from optlab.report.sweeps import (
                                  ALL_TRIALS,
                                  best_so_far,
                                  branch_importances,
                                  conditioning_params,
                                  intermediate_values,
                                  load_study,
                                  log_scaled,
                                  param_importances,
                                  sweep_at,
                                  sweep_direction,
                                  sweeps_at,
)

__all__ = ["ALL", "ALL_TRIALS", "Collection", "Metric", "STATUSES", "Skipped", "Sweep", "aggregate", "best_so_far", "branch_importances",
           "check_keys", "chosen_statuses", "compare", "conditioning_params", "describe", "differing_keys", "epochs_to_target",
           "group_curves", "group_labels", "grouping_keys", "intermediate_values", "load", "load_study", "load_run", "load_sweep",
           "log_scaled", "merge_duplicates", "numeric_keys", "param_importances", "pooled_keys", "replicate_ids",
           "resolve_metric", "show_value", "sweep_at", "sweep_direction", "sweeps_at", "range_text", "t_quantile", "t_sf",
           "value_range", "welch"]
