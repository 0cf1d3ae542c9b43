//! Intensity normalisation: min-max, percentile windowing, log transform.
