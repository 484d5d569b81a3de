//! `torture report`: reads result folders and prints per-profile statistics and pairwise comparisons in several formats.
