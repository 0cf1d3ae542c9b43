//! Dataset folders, splits, k-fold, category balancing and batching.
